"""PixelCNN++ sampling: fast (per-layer caches, each activation computed once) vs naive (one full forward per pixel).

    python benchmarks/pixelcnn_pp.py                 # the paper config (nr_resnet=5, nr_filters=160), 16 samples
    python benchmarks/pixelcnn_pp.py --preset small --naive-pixels 64

Both paths run in their own subprocess so each reports its own peak memory (max RSS). The naive
path costs the same full forward for every pixel, so it is timed on its first ``--naive-pixels``
pixels and scaled to the image; both paths draw those pixels from the same seed and the script
checks that they agree. Random weights: speed does not depend on training.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def run(preset: str, batch: int, threads: int, naive: bool, pixels: int | None) -> dict:
    import zoo
    from zoo.models.pixelcnn_pp import FastSampler

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = zoo.build("pixelcnn++", preset).eval()
    c = model.config
    total = c.height * c.width
    pixels = total if pixels is None else min(pixels, total)
    levels = torch.zeros(batch, c.channels, c.height, c.width, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        start = time.perf_counter()
        state = None if naive else FastSampler(model, levels, None, 0)
        for t in range(pixels):
            row, col = divmod(t, c.width)
            model.sample_pixel(levels, None, row, col, 1.0, generator, state)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "pixels": pixels, "total_pixels": total, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "first_pixels": levels.flatten(2).transpose(1, 2)[:, :pixels].tolist(), "params": model.num_parameters()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--naive-pixels", type=int, default=8, help="pixels to time on the naive path (it costs the same per pixel)")
    p.add_argument("--child", choices=["naive", "fast"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        naive = args.child == "naive"
        print(json.dumps(run(args.preset, args.batch, args.threads, naive, args.naive_pixels if naive else None)))
        return
    results = {}
    for path in ("naive", "fast"):
        cmd = [sys.executable, __file__, "--child", path, "--preset", args.preset, "--batch", str(args.batch),
               "--threads", str(args.threads), "--naive-pixels", str(args.naive_pixels)]
        results[path] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    naive, fast = results["naive"], results["fast"]
    k = naive["pixels"]
    same = [row[:k] for row in fast["first_pixels"]] == naive["first_pixels"]
    naive_image_s = naive["seconds"] / k * naive["total_pixels"]
    print(f"PixelCNN++ preset {args.preset!r} ({fast['params']:,} parameters), batch {args.batch}, {args.threads} threads, random weights")
    print(f"naive: {naive['seconds']:.2f} s for {k} pixels -> {naive_image_s:.1f} s per batch of images (scaled to "
          f"{naive['total_pixels']} pixels), {args.batch / naive_image_s:.4f} samples/s, peak RSS {naive['peak_rss_mb']:.0f} MB")
    print(f"fast:  {fast['seconds']:.2f} s per batch of images, {args.batch / fast['seconds']:.4f} samples/s, peak RSS {fast['peak_rss_mb']:.0f} MB")
    print(f"first {k} pixels identical on both paths: {same}")
    print(f"speedup fast / naive: {naive_image_s / fast['seconds']:.1f}x")
    if not same:
        sys.exit("fast and naive sampling disagree")


if __name__ == "__main__":
    main()
