"""Every speed goal of the project measured side by side in one run, written to ``benchmarks/results.json``.

    python benchmarks/run_all.py [--threads 1] [--only main_job cli pixelcnn_pp text wavenet gpt2] [--quick]

Random weights unless a shipped checkpoint is named (speed does not depend on training). Every
fast path is checked against its naive reference on the same seed before its time counts. Naive
paths whose full run would take minutes or hours (a full forward per pixel) are timed on their
first steps and scaled: a naive step costs the same at every position. Peers (pclucas14/pixel-cnn-pp,
nanoGPT's ``generate``, r9y9/wavenet_vocoder) are not dependencies: install them by their own
documentation and compare with the same weights; their figures in the speed issue were measured that
way. transformers (a test dependency) is GPT-2's peer, run side by side here when it is installed.
README's performance table is rendered from the JSON (``python benchmarks/run_all.py --render``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo
from zoo.contract import native_bf16
from zoo.image import FullForward

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def _image_steps(model, n: int, naive: bool, steps: int | None, seed: int = 0) -> tuple[float, torch.Tensor]:
    """Seconds for the first ``steps`` generation steps (all when None) of a batch of ``n``, and the levels drawn."""
    levels = torch.zeros((n, *model.space.shape), dtype=torch.long)
    per_image = model.space.dims // model.space.channels * model.distribution.draws_per_position
    stop = per_image if steps is None else min(steps, per_image)
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        start = time.perf_counter()
        cache = FullForward(model, levels, None) if naive else model.incremental_cache(levels, None, 0)
        model.run_generation(cache, 0, stop, n, 1.0, g, False, "step")
        seconds = time.perf_counter() - start
    return seconds * per_image / stop, levels.permute(0, 2, 3, 1).reshape(n, -1)[:, :stop]


def image_speedup(model, n: int, naive_steps: int) -> dict:
    fast_s, fast_levels = _image_steps(model, n, False, None)
    naive_s, naive_levels = _image_steps(model, n, True, naive_steps)
    k = naive_levels.shape[1]
    assert torch.equal(fast_levels[:, :k], naive_levels), "cached sampling must draw what the naive path draws"
    return {"params": model.num_parameters(), "batch": n, "fast_s": round(fast_s, 3), "naive_s_scaled": round(naive_s, 2),
            "naive_steps_timed": k, "speedup": round(naive_s / fast_s, 1)}


def main_job() -> dict:
    """README's main job: the CLI command end to end (process start, import, load, 16 samples, PNG)."""
    out = {}
    cmd = [sys.executable, "-m", "zoo", "sample", "pixelcnn-binarized-mnist", "-n", "16", "-o", str(HERE / ".main_job.png"), "--seed", "0"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    out["cli_seconds"] = round(time.perf_counter() - start, 2)
    (HERE / ".main_job.png").unlink(missing_ok=True)
    out.update(image_speedup(zoo.load("pixelcnn-binarized-mnist"), 16, 32))
    return out


def cli() -> dict:
    out = {}
    for name, args in (("help", ["--help"]), ("list", ["list"]), ("info", ["info", "pixelcnn-binarized-mnist"])):
        best = min(_wall([sys.executable, "-m", "zoo", *args]) for _ in range(3))
        out[f"{name}_seconds"] = round(best, 3)
    return out


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def pixelcnn_pp(quick: bool) -> dict:
    torch.manual_seed(0)
    out = {"shipped_batch4": image_speedup(zoo.load("pixelcnn++-cifar10"), 4, 8)}
    if not quick:
        paper = zoo.build("pixelcnn++", "paper", dropout=0.0).eval()
        out["paper_batch16"] = image_speedup(paper, 16, 2)
        x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
        for dtype in (torch.float32, torch.bfloat16):
            model = paper.to(dtype)
            model.log_prob(x[:2])
            start = time.perf_counter()
            model.log_prob(x)
            out[f"paper_log_prob_images_per_s_{str(dtype).removeprefix('torch.')}"] = round(16 / (time.perf_counter() - start), 2)
        paper.float()
        out["paper_bf16_over_fp32"] = round(out["paper_log_prob_images_per_s_bfloat16"] / out["paper_log_prob_images_per_s_float32"], 2)
    return out


def _chars_per_second(model, prompt: str, chars: int, naive: bool) -> tuple[float, str]:
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    text = model.complete(prompt, max_new_chars=chars, generator=g, naive=naive, progress=False)
    return chars / (time.perf_counter() - start), text


def text(quick: bool) -> dict:
    torch.manual_seed(0)
    gpt = zoo.build("char-transformer", "shakespeare-char", dropout=0.0).eval()
    prompt = ("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 8)[: gpt.config.context - 1]
    gpt.complete(prompt, max_new_chars=4, progress=False)
    cached, text_cached = _chars_per_second(gpt, prompt, 128 if quick else 512, False)
    naive, text_naive = _chars_per_second(gpt, prompt, 16 if quick else 64, True)
    assert text_cached.startswith(text_naive), "KV-cache generation must equal naive recomputation"
    shipped = zoo.load("chargpt-shakespeare")
    shipped.complete("ROMEO:", max_new_chars=4, progress=False)
    rate, _ = _chars_per_second(shipped, "ROMEO:", 256 if quick else 1024, False)
    lstm = zoo.load("charrnn-shakespeare")
    lstm_rate, _ = _chars_per_second(lstm, "ROMEO:", 256 if quick else 1024, False)
    return {"nanogpt_size_kv_chars_per_s": round(cached, 1), "nanogpt_size_naive_chars_per_s": round(naive, 1),
            "kv_over_naive": round(cached / naive, 1), "chargpt_shakespeare_chars_per_s": round(rate, 1),
            "charrnn_shakespeare_chars_per_s": round(lstm_rate, 1)}


def wavenet(quick: bool) -> dict:
    out = {}
    for name, model in (("r9y9_20", zoo.build("wavenet", "r9y9-20").eval()), ("wavenet_fsdd", zoo.load("wavenet-fsdd"))):
        cond = model.labels[0] if model.labels else None
        samples = 2000 if quick else 8000
        model.sample(1, samples=600, condition=cond, progress=False)  # TorchScript optimises over its first calls
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        fast = model.sample(1, samples=samples, condition=cond, generator=g, progress=False)
        fast_rate = samples / (time.perf_counter() - start)
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        naive = model.sample(1, samples=200, condition=cond, generator=g, naive=True, progress=False)
        naive_rate = 200 / (time.perf_counter() - start)
        assert torch.equal(fast[:, :200], naive), "fast WaveNet must draw what the naive path draws"
        out[name] = {"fast_samples_per_s": round(fast_rate), "naive_samples_per_s": round(naive_rate, 1),
                     "speedup": round(fast_rate / naive_rate, 1), "real_time_factor": round(model.sample_rate / fast_rate, 3),
                     "receptive_field": model.receptive_field}
    return out


def gpt2(quick: bool) -> dict:
    """GPT-2 small (124M, random weights) greedy at batch 1 against transformers' ``generate`` (``benchmarks/gpt2.py``)."""
    try:
        import transformers  # noqa: F401  (a test dependency, not a runtime one)
    except ImportError:
        return {"skipped": "transformers is not installed (pip install transformers)"}
    cmd = [sys.executable, str(HERE / "gpt2.py"), "--threads", str(torch.get_num_threads()), "--new-tokens", "16" if quick else "64",
           "--repeats", "1" if quick else "3"]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model_name = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), platform.processor())
    return {"cpu": model_name, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "native_bf16": native_bf16(),
            "torch": torch.__version__, "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def render(results: dict) -> str:
    """The README's performance table, from the measured results."""
    rows = ["| what | measured | goal |", "|---|---|---|"]
    m = results.get("main_job")
    if m:
        rows.append(f"| `zoo sample pixelcnn-binarized-mnist -n 16` (CLI, end to end) | {m['cli_seconds']} s; cached sampling "
                    f"{m['speedup']}x naive at batch 16 | <= 3 s; >= 50x |")
    c = results.get("cli")
    if c:
        rows.append(f"| `zoo --help` / `zoo list` / `zoo info` | {c['help_seconds']} / {c['list_seconds']} / {c['info_seconds']} s | <= 0.5 s |")
    p = results.get("pixelcnn_pp")
    if p:
        rows.append(f"| PixelCNN++ cached sampling, shipped config, batch 4 | {p['shipped_batch4']['speedup']}x naive | >= 50x |")
        if "paper_batch16" in p:
            rows.append(f"| PixelCNN++ cached sampling, paper config (53.7M), batch 16 | {p['paper_batch16']['speedup']}x naive | >= 100x |")
            rows.append(f"| PixelCNN++ paper config `log_prob`, batch 16, bf16 / fp32 | {p['paper_bf16_over_fp32']}x | >= 3x with AMX |")
    t = results.get("text")
    if t:
        rows.append(f"| char Transformer (nanoGPT size), batch 1, KV cache | {t['nanogpt_size_kv_chars_per_s']} chars/s "
                    f"({t['kv_over_naive']}x naive) | >= 1,000 chars/s |")
        rows.append(f"| `chargpt-shakespeare` / `charrnn-shakespeare`, batch 1 | {t['chargpt_shakespeare_chars_per_s']} / "
                    f"{t['charrnn_shakespeare_chars_per_s']} chars/s | >= 2,000 chars/s |")
    w = results.get("wavenet")
    if w:
        rows.append(f"| WaveNet r9y9-20 (RF {w['r9y9_20']['receptive_field']}), batch 1 | {w['r9y9_20']['fast_samples_per_s']:,} samples/s "
                    f"({w['r9y9_20']['speedup']}x naive) | >= 8,000 samples/s |")
        rows.append(f"| `wavenet-fsdd` real-time factor at 8 kHz | {w['wavenet_fsdd']['real_time_factor']} | <= 0.3 |")
    g = results.get("gpt2")
    if g and "speedup" in g:
        rows.append(f"| GPT-2 small (124M) greedy, batch 1, vs transformers `generate` | {g['zoo_tokens_per_s']} tokens/s, "
                    f"{g['speedup']}x transformers (weights-only floor {g['floor_tokens_per_s']}) | >= 1.5x |")
    mc = results["machine"]
    rows.append(f"\nMeasured {mc['date']} on {mc['cpu']} ({mc['cores']} cores, {mc['threads']} thread(s), native bf16: "
                f"{mc['native_bf16']}, load average {mc['load_average']:.1f}) with `python benchmarks/run_all.py`.")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="+", choices=["main_job", "cli", "pixelcnn_pp", "text", "wavenet", "gpt2"])
    p.add_argument("--quick", action="store_true", help="fewer steps, no paper-size PixelCNN++ (a smoke run)")
    p.add_argument("--render", action="store_true", help="print README's table from results.json and exit")
    args = p.parse_args()
    if args.render:
        print(render(json.loads(RESULTS.read_text())))
        return
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() and args.only else {}
    jobs = {"main_job": main_job, "cli": cli, "pixelcnn_pp": lambda: pixelcnn_pp(args.quick), "text": lambda: text(args.quick),
            "wavenet": lambda: wavenet(args.quick), "gpt2": lambda: gpt2(args.quick)}
    for name in args.only or jobs:
        results[name] = jobs[name]()
        print(name, json.dumps(results[name]), flush=True)
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))


if __name__ == "__main__":
    main()
