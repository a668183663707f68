"""PixelCNN throughput on this machine: log_prob images/s and sampling images/s, measured side by side.

    python benchmarks/pixelcnn.py [--preset binarized-mnist] [--batch 16] [--threads N]

Random weights (speed does not depend on training). Prints one line per measurement and the
ratios between paths, so no absolute timing is ever asserted in tests.
"""

from __future__ import annotations

import argparse
import time

import torch

import zoo


def timed(fn, repeat: int = 1) -> float:
    fn()  # warm-up (allocator, oneDNN kernel selection)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="binarized-mnist")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = zoo.build("pixelcnn", args.preset).eval()
    space = model.space
    x = torch.randint(0, space.levels, (args.batch, *space.shape), dtype=torch.uint8)
    print(f"pixelcnn preset={args.preset} params={model.num_parameters():,} batch={args.batch} threads={torch.get_num_threads()}")

    results: dict = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        m = model.to(dtype)
        t = timed(lambda m=m: m.log_prob(x), repeat=3)
        results[f"log_prob {name}"] = args.batch / t
        print(f"log_prob {name}: {args.batch / t:8.1f} images/s")
    model = model.float()

    # Sampling: one full sample() of the batch per path, same seed, so both draw the same images.
    seconds = {}
    for naive in (True, False):
        start = time.perf_counter()
        images = model.sample(args.batch, generator=torch.Generator().manual_seed(0), progress=False, naive=naive)
        seconds[naive] = time.perf_counter() - start
        label = "naive (full image per step)" if naive else "row-cropped (default)"
        print(f"sample {label}: {seconds[naive]:7.2f} s for {args.batch} images, {args.batch / seconds[naive]:6.3f} images/s")
        results[naive] = images
    assert torch.equal(results[True], results[False]), "row-cropped sampling must equal naive sampling"
    print(f"ratio row-cropped / naive sampling speed: {seconds[True] / seconds[False]:.2f}x")
    print(f"ratio bf16 / fp32 log_prob: {results['log_prob bf16'] / results['log_prob fp32']:.2f}x")


if __name__ == "__main__":
    main()
