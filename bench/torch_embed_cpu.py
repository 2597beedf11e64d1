"""EfficientNet-Lite0 forward on one CPU thread in PyTorch: the reference for the
browser's wasm CPU path (bench/README.md). Random weights (timm's
tf_efficientnet_lite0 architecture; the time does not depend on the values), one
image, p50/p95 of 30 after 5 warm-ups, at each size. Prints JSON.

Usage: python3 bench/torch_embed_cpu.py [--sizes 160,224]
"""
import argparse
import json
import platform
import time

import timm
import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="160,224")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    results = {}
    with torch.inference_mode():
        for size in [int(s) for s in args.sizes.split(",")]:
            x = torch.randn(1, 3, size, size)
            for _ in range(5):
                model.forward_features(x)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                model.forward_features(x)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            results[str(size)] = {
                "p50_ms": times[len(times) // 2],
                "p95_ms": times[int(len(times) * 0.95)],
            }
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}, one CPU thread",
        "cpu": platform.processor() or platform.machine(),
        "model": "tf_efficientnet_lite0 (timm), forward_features, batch 1",
        "results": results,
    }))


if __name__ == "__main__":
    main()
