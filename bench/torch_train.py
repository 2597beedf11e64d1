#!/usr/bin/env python3
"""PyTorch eager reference for MetricANN's training throughput.

The same network as `src/model/` (the glyph ResNet, or timm's EfficientNet-Lite0
with the same projection and batch-norm neck), the same batch-hard triplet loss
and AdamW, on the same batch and input size, fed random images so that only the
training step is timed. Prints one JSON object.

    python3 bench/torch_train.py --batch-size 256 --input-size 64 --widths 32,64,128,256
    python3 bench/torch_train.py --arch efficientnet-lite0 --batch-size 128 --input-size 160
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.first = ConvBn(cin, cout, 3, stride)
        self.second = ConvBn(cout, cout, 3, 1)
        self.shortcut = ConvBn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        skip = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(self.second(F.relu(self.first(x))) + skip)


class Net(nn.Module):
    def __init__(self, widths, blocks, dim):
        super().__init__()
        self.stem = ConvBn(3, widths[0], 3, 1)
        layers, c = [], widths[0]
        for s, w in enumerate(widths):
            for b in range(blocks):
                layers.append(Block(c, w, 2 if s > 0 and b == 0 else 1))
                c = w
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(c, dim)
        self.neck = nn.BatchNorm1d(dim)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return F.normalize(self.neck(self.head(x.mean(dim=(2, 3)))), dim=1)


class EfficientNetEmbedder(nn.Module):
    """timm's tf_efficientnet_lite0 trunk, pooled, projected, batch-normed, L2-normalised."""

    def __init__(self, dim):
        super().__init__()
        import timm
        self.backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        self.head = nn.Linear(1280, dim)
        self.neck = nn.BatchNorm1d(dim)

    def forward(self, x):
        return F.normalize(self.neck(self.head(self.backbone(x))), dim=1)


def batch_hard(e, labels, margin):
    d = (2 - 2 * e @ e.t()).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=e.device)
    pos = (same & ~eye).float()
    neg = (~same).float()
    hp = (d * pos).max(1).values
    hn = (d + 4.0 * (1 - neg)).min(1).values
    return F.relu(hp - hn + margin).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--input-size", type=int, default=64)
    ap.add_argument("--widths", default="32,64,128,256")
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--arch", default="resnet-glyph", choices=["resnet-glyph", "efficientnet-lite0"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--profile", action="store_true",
                    help="also time the GPU kernels (torch.profiler): their total per step and the top ten")
    a = ap.parse_args()
    dev = torch.device("cuda")
    if a.arch == "efficientnet-lite0":
        net = EfficientNetEmbedder(a.dim).to(dev)
    else:
        net = Net([int(w) for w in a.widths.split(",")], a.blocks, a.dim).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-4)
    x = torch.randn(a.batch_size, 3, a.input_size, a.input_size, device=dev)
    labels = torch.arange(a.batch_size // a.per_class, device=dev).repeat_interleave(a.per_class)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = batch_hard(net(x), labels, 0.2)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    loss.item()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    extra = profile(step, a.steps) if a.profile else {}
    print(json.dumps({
        "framework": f"pytorch {torch.__version__} eager",
        "device": torch.cuda.get_device_name(0),
        "arch": a.arch, "batch_size": a.batch_size, "input_size": a.input_size,
        **({"widths": a.widths} if a.arch == "resnet-glyph" else {}),
        "steps": a.steps, "seconds": seconds,
        "images_per_sec": a.batch_size * a.steps / seconds,
        **extra,
    }))


def profile(step, steps):
    """GPU kernel time per step: with the wall time, how busy the GPU is."""
    from torch.profiler import ProfilerActivity, profile as torch_profile
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    def device_us(e):
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
    events = [e for e in prof.key_averages() if device_us(e) > 0]
    total_us = sum(device_us(e) for e in events)
    top = sorted(events, key=lambda e: -device_us(e))[:10]
    return {
        "kernel_ms_per_step": total_us / 1000 / steps,
        "kernel_launches_per_step": sum(e.count for e in events) / steps,
        "top_kernels": [{"name": e.key[:80], "ms_per_step": device_us(e) / 1000 / steps,
                         "calls_per_step": e.count / steps} for e in top],
    }


if __name__ == "__main__":
    main()
