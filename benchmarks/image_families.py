"""Image families side by side: log_prob images/s and sampling images/s, fast (cached) vs naive.

    python benchmarks/image_families.py [--batch 4] [--threads N] [--size 28] [--naive-rows 4]

Random weights (speed does not depend on training). Naive sampling runs one full forward per
pixel and channel, so it is timed on the last ``--naive-rows`` rows only and extrapolated to
the whole image (printed as such); the fast path is timed on whole images and checked equal to
naive on those rows. Ratios only: no absolute timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import time

import torch

import zoo

MODELS = [
    ("pixelcnn", "binarized-mnist", {}),
    ("gated-pixelcnn", "binarized-mnist", {}),
    ("gated-pixelcnn", "mnist", {}),
    ("pixelrnn", "row-lstm-mnist", {}),
    ("pixelrnn", "paper-mnist", {}),
]


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--naive-rows", type=int, default=4)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"batch={args.batch} threads={torch.get_num_threads()} (random weights, fp32)")
    print(f"{'model':34s} {'params':>9s} {'log_prob img/s':>15s} {'sample fast img/s':>18s} {'naive img/s (extrap.)':>22s} {'fast/naive':>10s}")
    for family, preset, overrides in MODELS:
        model = zoo.build(family, preset, **overrides).eval()
        h = model.space.height
        cond = "3" if model.num_conditions else None
        x = model.example_batch(args.batch)
        model.log_prob(x, condition=cond)  # warm-up
        lp = args.batch / seconds(lambda: model.log_prob(x, condition=cond))  # noqa: B023
        fast_s = seconds(lambda: model.sample(args.batch, condition=cond, generator=torch.Generator().manual_seed(0), progress=False))  # noqa: B023
        # Naive costs one full forward per pixel whatever the row, so time the last k rows (complete()
        # with the rows above known) and scale to the whole image; check fast == naive on them.
        k = args.naive_rows
        cut = h - k
        blank = torch.zeros(args.batch, *model.space.shape, dtype=torch.uint8)
        g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
        naive_s = seconds(lambda: model.complete(blank, rows=cut, condition=cond, generator=g(), naive=True, progress=False))  # noqa: B023
        same = torch.equal(model.complete(blank, rows=cut, condition=cond, generator=g(), progress=False),
                           model.complete(blank, rows=cut, condition=cond, generator=g(), naive=True, progress=False))
        naive_full = naive_s * h / k
        name = f"{family}:{preset}"
        print(f"{name:34s} {model.num_parameters():9,d} {lp:15.1f} {args.batch / fast_s:18.3f} {args.batch / naive_full:22.4f} "
              f"{naive_full / fast_s:9.1f}x{'' if same else '  MISMATCH'}", flush=True)


if __name__ == "__main__":
    main()
