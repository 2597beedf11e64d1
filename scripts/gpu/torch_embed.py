#!/usr/bin/env python3
"""Embeds the held-out evaluation images with the fine-tuned and the off-the-shelf
EfficientNet-Lite0 on the GPU, in `metricann extract`'s layout, so that
`metricann eval --embeddings DIR --per-source --support-prefix enroll-` scores them
with the same code as every other row of the table.

The networks are the bundles' (the same weights, imported by `metricann import`),
run in float32 without TF32 on the same pixels (RGB scaled to [-1, 1]; the images
are already the input size). Also writes the embeddings of the first validation
images, which the burn network must reproduce (docs/models.md says how it is checked).

    python3 scripts/gpu/torch_embed.py --imagenet efficientnet-lite0-57934424.pth \
        --objects objects.pth --eval /tmp/objects/eval --val /tmp/objects/val --out $OUT
"""
import argparse
import json
import os

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from torch_finetune import load_trunk, published_keys as load


def trunk_from(state):
    """timm's trunk with a checkpoint's published-name tensors copied in key order."""
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    load_trunk(net, state)
    return net


class Retrieval(nn.Module):
    def __init__(self, state):
        super().__init__()
        self.trunk = trunk_from(state)
        dim = state["_proj.weight"].shape[0]
        self.proj = nn.Linear(1280, dim)
        self.proj.load_state_dict({k[len("_proj."):]: v for k, v in state.items() if k.startswith("_proj.")})
        self.bn = nn.BatchNorm1d(dim)
        self.bn.load_state_dict({k[len("_proj_bn."):]: v for k, v in state.items() if k.startswith("_proj_bn.")},
                                strict=False)

    def forward(self, x):
        return F.normalize(self.bn(self.proj(self.trunk(x))), dim=1)


class Pooled(nn.Module):
    def __init__(self, state):
        super().__init__()
        self.trunk = trunk_from(state)

    def forward(self, x):
        return F.normalize(self.trunk(x), dim=1)


def images_of(root):
    rows = []
    for c in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, c)):
            rows += [(os.path.join(root, c, f), c) for f in sorted(os.listdir(os.path.join(root, c)))]
    return rows


@torch.no_grad()
def embed(net, paths, size, device):
    out = []
    for i in range(0, len(paths), 128):
        batch = []
        for p in paths[i:i + 128]:
            im = Image.open(p).convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            batch.append(np.asarray(im, dtype=np.float32) / 127.5 - 1.0)
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device)
        out.append(net(x).float().cpu())
    return torch.cat(out).numpy().astype("<f4")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imagenet", required=True)
    ap.add_argument("--objects", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--fingerprints", default="{}", help='JSON: {"objects": ..., "imagenet": ...}')
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    fingerprints = json.loads(a.fingerprints)
    nets = {"objects": Retrieval(load(a.objects)), "imagenet": Pooled(load(a.imagenet))}
    for name, net in nets.items():
        net = net.to(device).eval()
        for source in tqdm(sorted(os.listdir(a.eval)), desc=name):
            rows = images_of(os.path.join(a.eval, source))
            vectors = embed(net, [p for p, _ in rows], a.size, device)
            out = os.path.join(a.out, name, source)
            os.makedirs(out, exist_ok=True)
            np.save(os.path.join(out, "vectors.npy"), vectors)
            with open(os.path.join(out, "labels.tsv"), "w") as f:
                f.write("path\tlabel\n")
                f.writelines(f"{os.path.relpath(p, a.eval)}\t{c}\n" for p, c in rows)
            json.dump({"fingerprint": fingerprints.get(name, name), "dim": int(vectors.shape[1]),
                       "model": name, "count": len(rows), "made_by": "pytorch (scripts/gpu/torch_embed.py)"},
                      open(os.path.join(out, "meta.json"), "w"))
        check = images_of(a.val)[:16]
        np.save(os.path.join(a.out, f"check-{name}.npy"), embed(net, [p for p, _ in check], a.size, device))
        with open(os.path.join(a.out, "check.tsv"), "w") as f:
            f.writelines(f"{os.path.relpath(p, a.val)}\n" for p, _ in check)
    print("embedded", {k: len(os.listdir(os.path.join(a.out, k))) for k in nets})


if __name__ == "__main__":
    main()
