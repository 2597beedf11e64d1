#!/usr/bin/env python3
"""Fine-tunes ImageNet EfficientNet-Lite0 for few-shot retrieval in PyTorch, and
writes the result as a checkpoint that `metricann import --projection-dim` reads.

The recipe is the one `metricann train --arch efficientnet-lite0` runs (docs/models.md):
the pretrained trunk, a 1280→DIM linear projection with a batch-norm neck and L2
normalisation, batch-hard triplet loss (margin 0.2) on P×K batches, AdamW with the
trunk at a tenth of the head's learning rate and frozen for the first epoch, cosine
decay, camera-like augmentation (partial off-centre crops, perspective, rotation,
flips, lighting and colour casts, blur, sensor noise, low-quality JPEG). Inputs are
RGB scaled to [-1, 1], as the bundle's preprocessing gives them.

The checkpoint keeps the published key names (`_conv_stem`, `_blocks.N...`) and adds
`_proj` and `_proj_bn`, so the path from weights to bundle stays the Rust importer's.
Runs on the GPU machine (PyTorch, torchvision, timm); progress on stderr (tqdm).

    python3 scripts/gpu/torch_finetune.py --weights efficientnet-lite0-57934424.pth \
        --train /tmp/objects/train --val /tmp/objects/val --seconds 240 --out $OUT
"""
import argparse
import io
import json
import math
import os
import random
import time

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torchvision import transforms as T
from tqdm import tqdm


def load_folder(root):
    """ImageFolder into memory: (list of PIL images, labels, class names)."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for c, name in enumerate(tqdm(classes, desc=f"loading {os.path.basename(root)}", mininterval=5)):
        for f in sorted(os.listdir(os.path.join(root, name))):
            with Image.open(os.path.join(root, name, f)) as im:
                images.append(im.convert("RGB").copy())
            labels.append(c)
    return images, labels, classes


class Jpeg:
    """Re-encodes at a low quality, as a phone's camera stream does."""

    def __init__(self, p, quality=(15, 60)):
        self.p, self.quality = p, quality

    def __call__(self, im):
        if random.random() >= self.p:
            return im
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=random.randint(*self.quality))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


class Blur:
    def __init__(self, p):
        self.p = p

    def __call__(self, im):
        if random.random() >= self.p:
            return im
        return im.filter(ImageFilter.GaussianBlur(random.uniform(0.3, 1.6)))


class ColourCast:
    """Per-channel gains: tungsten, daylight and fluorescent light."""

    def __init__(self, p, strength=0.15):
        self.p, self.strength = p, strength

    def __call__(self, x):
        if random.random() >= self.p:
            return x
        gains = 1 + (torch.rand(3, 1, 1) * 2 - 1) * self.strength
        return (x * gains).clamp(0, 1)


class Noise:
    def __init__(self, p, sigma=(0.0, 0.04)):
        self.p, self.sigma = p, sigma

    def __call__(self, x):
        if random.random() >= self.p:
            return x
        return (x + torch.randn_like(x) * random.uniform(*self.sigma)).clamp(0, 1)


def camera_augment(size, crop_min):
    return T.Compose([
        T.RandomResizedCrop(size, scale=(crop_min, 1.0), ratio=(0.75, 1.333)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.RandomRotation(20, fill=(128, 128, 128))], p=0.5),
        T.RandomPerspective(0.3, p=0.5, fill=(128, 128, 128)),
        T.ColorJitter(0.4, 0.4, 0.3, 0.03),
        T.RandomGrayscale(0.05),
        Blur(0.3),
        Jpeg(0.3),
        T.ToTensor(),
        ColourCast(0.3),
        Noise(0.3),
    ])


class PkBatches(torch.utils.data.Dataset):
    """Epoch = every class once, P classes × K views per batch (a class with fewer
    than K images repeats one: its views differ by augmentation)."""

    def __init__(self, images, labels, p, k, augment, seed):
        self.images, self.p, self.k, self.augment = images, p, k, augment
        self.by_class = {}
        for i, c in enumerate(labels):
            self.by_class.setdefault(c, []).append(i)
        self.classes = sorted(self.by_class)
        self.rng = random.Random(seed)
        self.reshuffle()

    def reshuffle(self):
        order = self.classes[:]
        self.rng.shuffle(order)
        self.batches = [order[i:i + self.p] for i in range(0, len(order) - self.p + 1, self.p)]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, b):
        rng = random.Random(hash((b, time.time_ns())))
        xs, ys = [], []
        for c in self.batches[b]:
            members = self.by_class[c]
            picks = rng.sample(members, self.k) if len(members) >= self.k else [rng.choice(members) for _ in range(self.k)]
            for i in picks:
                xs.append(self.augment(self.images[i]))
                ys.append(c)
        return torch.stack(xs) * 2 - 1, torch.tensor(ys)


class Embedder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        self.proj = nn.Linear(1280, dim)
        self.proj_bn = nn.BatchNorm1d(dim)

    def forward(self, x):
        return F.normalize(self.proj_bn(self.proj(self.backbone(x))), dim=1)


def published_keys(path):
    """A checkpoint's state dict (the published one is a legacy pickle)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        state = torch.load(path, map_location="cpu", weights_only=False)
    return state


def load_trunk(model, state):
    """The checkpoint's trunk tensors into timm's trunk in key order (the classifier and
    any retrieval head left out); returns timm key → published key, for writing the
    result back under the published names."""
    source = [(k, v) for k, v in state.items()
              if not k.endswith("num_batches_tracked") and not k.startswith(("_fc.", "_proj"))]
    target = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(source) == len(target), (len(source), len(target))
    mapped, names = {}, {}
    for (sk, sv), (tk, tv) in zip(source, target):
        assert sv.shape == tv.shape, (sk, tk, sv.shape, tv.shape)
        mapped[tk] = sv
        names[tk] = sk
    model.load_state_dict(mapped, strict=False)
    return names


def batch_hard(e, labels, margin):
    d = (2 - 2 * e @ e.t()).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=e.device)
    hp = (d * (same & ~eye).float()).max(1).values
    hn = (d + 4.0 * same.float()).min(1).values
    return F.relu(hp - hn + margin).mean()


@torch.no_grad()
def validate(model, images, labels, size, device):
    """Leave-one-out MAP@R and P@1 among the validation images (as the Rust trainer)."""
    model.eval()
    prep = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor()])
    vecs = []
    for i in range(0, len(images), 256):
        x = torch.stack([prep(im) for im in images[i:i + 256]]).to(device) * 2 - 1
        vecs.append(model(x).float())
    v = torch.cat(vecs)
    y = torch.tensor(labels, device=device)
    s = v @ v.t()
    s.fill_diagonal_(-float("inf"))
    order = s.argsort(1, descending=True)
    hits = (y[order] == y[:, None]).float()[:, :-1]
    r = (y[:, None] == y[None, :]).sum(1) - 1
    keep = r > 0
    hits, r = hits[keep], r[keep]
    ranks = torch.arange(1, hits.shape[1] + 1, device=device).float()
    within = ranks[None, :] <= r[:, None]
    prec = hits.cumsum(1) / ranks
    map_r = ((prec * hits * within).sum(1) / r).mean().item()
    model.train()
    return map_r, hits[:, 0].mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="the published ImageNet checkpoint (.pth)")
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", required=True, help="folder for objects.pth, metrics.jsonl and summary.json")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes-per-batch", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--backbone-lr-scale", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--margin", type=float, default=0.2)
    ap.add_argument("--crop-min", type=float, default=0.35)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=240, help="stop after this long, keeping the best epoch")
    ap.add_argument("--val-every", type=int, default=3)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    device = torch.device("cuda")
    os.makedirs(a.out, exist_ok=True)

    train_images, train_labels, train_classes = load_folder(a.train)
    val_images, val_labels, _ = load_folder(a.val)
    data = PkBatches(train_images, train_labels, a.classes_per_batch, a.per_class, camera_augment(a.size, a.crop_min), a.seed)
    model = Embedder(a.dim)
    state = published_keys(a.weights)
    names = load_trunk(model.backbone, state)
    model = model.to(device).train()
    trunk = list(model.backbone.parameters())
    head = list(model.proj.parameters()) + list(model.proj_bn.parameters())
    opt = torch.optim.AdamW([
        {"params": trunk, "lr": a.lr * a.backbone_lr_scale, "base": a.lr * a.backbone_lr_scale},
        {"params": head, "lr": a.lr, "base": a.lr},
    ], weight_decay=a.weight_decay)
    steps = a.epochs * len(data)
    warmup = max(1, steps // 20)

    start = time.time()
    best = (-1.0, None, -1)
    log = open(os.path.join(a.out, "metrics.jsonl"), "w")
    map_r, p1 = validate(model, val_images, val_labels, a.size, device)
    log.write(json.dumps({"epoch": 0, "val_map_at_r": map_r, "val_precision_at_1": p1, "seconds": 0}) + "\n")
    print(f"epoch 0 (ImageNet trunk, random head): val MAP@R {map_r:.4f} P@1 {p1:.4f}", flush=True)
    step, images_seen, epoch = 0, 0, 0
    for epoch in range(1, a.epochs + 1):
        for p in trunk:
            p.requires_grad_(epoch > 1)
        data.reshuffle()
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=a.workers,
                                             persistent_workers=False, prefetch_factor=4)
        losses = []
        t0 = time.time()
        for x, y in tqdm(loader, desc=f"epoch {epoch}", leave=False, mininterval=10):
            frac = step / steps
            scale = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = g["base"] * scale
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                e = model(x)
            loss = batch_hard(e.float(), y, a.margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            images_seen += len(y)
        rate = len(losses) * a.classes_per_batch * a.per_class / (time.time() - t0)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "images_per_sec": rate,
               "seconds": time.time() - start}
        done = time.time() - start > a.seconds
        if epoch % a.val_every == 0 or done or epoch == a.epochs:
            map_r, p1 = validate(model, val_images, val_labels, a.size, device)
            row.update(val_map_at_r=map_r, val_precision_at_1=p1)
            if map_r > best[0]:
                best = (map_r, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch)
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(json.dumps(row), flush=True)
        if done:
            break

    model.load_state_dict(best[1])
    out = {}
    for k, v in model.backbone.state_dict().items():
        if k in names:
            out[names[k]] = v
    for k, v in model.proj.state_dict().items():
        out[f"_proj.{k}"] = v
    for k, v in model.proj_bn.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out[f"_proj_bn.{k}"] = v
    torch.save(out, os.path.join(a.out, "objects.pth"))
    summary = {
        "recipe": "pytorch-finetune", "epochs_run": epoch, "best_epoch": best[2], "val_map_at_r": best[0],
        "steps": step, "images_seen": images_seen, "seconds": time.time() - start,
        "train_classes": len(train_classes), "train_images": len(train_images),
        "val_classes": len(set(val_labels)), "val_images": len(val_images),
        "args": vars(a), "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0),
    }
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
