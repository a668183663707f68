"""The checks to run when a CUDA machine is at hand (no GPU is lent to CI).

    python benchmarks/gpu_check.py [--steps 50] [--recipes NAME ...] [--skip conformance,train,ddp,speed] [--compile]

On CUDA it runs, in order, printing each result as it comes:
1. the conformance properties on the GPU (causality by perturbation, cached == naive sampling under
   one seed) for every family's ``tiny`` preset, conditional and not;
2. ``--steps`` bf16 training steps of every shipped recipe's model and batch size (synthetic data
   of the recipe's shape: the datasets are not on GPU machines), with training examples/s;
3. DistributedDataParallel over all visible GPUs (torch.multiprocessing spawn, nccl), checked
   against one process with the same global batch (a group of one when only one GPU is visible);
4. per family: log_prob examples/s and samples/s of its first published checkpoint (else ``tiny``).
Exits 1 if a check fails. On a machine without CUDA it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

import zoo
import zoo.datasets
from zoo import conformance
from zoo.audio import AudioModel
from zoo.image import ImageModel
from zoo.recipe import Recipe
from zoo.registry import data_dir
from zoo.text import TextModel
from zoo.train import backend_for, train
from zoo.windows import AudioClip

SYNTHETIC = "gpu-check-synthetic"
DEVICE = torch.device("cuda")  # --device cpu: a dry run of the script's logic for maintainers without a GPU


def synthetic(model: Any, n: int, seed: int) -> Any:
    """``n`` random examples in the natural form of ``model``'s dataset adapters (speed does not depend on the data)."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, ImageModel):
        x = torch.randint(0, model.space.levels, (n, *model.space.shape), generator=g).to(torch.uint8)
        y = torch.randint(0, max(1, model.num_conditions), (n,), generator=g)
        return TensorDataset(x, y) if model.num_conditions else TensorDataset(x)
    if isinstance(model, TextModel):
        length = n * (getattr(model, "train_length", 256) + 1)
        return "".join(conformance.example(model, 1, length=length, seed=seed))
    if isinstance(model, AudioModel):
        rate = model.sample_rate
        labels = model.labels or ["speaker"]
        t = torch.arange(rate) / rate
        return [AudioClip((0.5 * torch.sin(2 * math.pi * (100 + 7 * i) * t) + 0.05 * torch.randn(rate, generator=g)).clamp(-1, 1),
                          rate, labels[i % len(labels)], Path(f"clip{i}.wav")) for i in range(n)]
    raise TypeError(f"no synthetic data for {model.modality!r}")


def use_synthetic(recipe: Recipe) -> None:
    """Register dataset ``SYNTHETIC`` with examples shaped for ``recipe``'s model (train: 4 batches, valid: 1)."""
    model = recipe.build_model()
    data = {"train": synthetic(model, 4 * recipe.batch_size, 0), "valid": synthetic(model, recipe.batch_size, 1)}
    zoo.datasets.DATASETS[SYNTHETIC] = lambda root, split: data[split]


def short_recipe(raw: dict[str, Any], steps: int, compile_: bool) -> Recipe:
    raw = {k: v for k, v in raw.items() if k != "notes"}
    raw.update(dataset=SYNTHETIC, valid_dataset=None, valid_split="valid", finetune_dataset=None, finetune_steps=0, steps=steps,
               warmup_steps=min(raw.get("warmup_steps", 10), 10), eval_every=steps, eval_examples=None, save_every=steps,
               precision="bf16", device=str(DEVICE), compile=compile_ and raw.get("compile", False))
    return Recipe.from_dict(raw)


def check_conformance(failures: list[str]) -> None:
    print(f"== conformance on {DEVICE} (causality by perturbation, cached == naive sampling)", flush=True)
    for family in zoo.list_families():
        for extra in conformance.variants(family):
            torch.manual_seed(0)
            label = f"{family}{' (conditional)' if extra else ''}"
            try:
                model = conformance.randomized(zoo.build(family, "tiny", **extra)).to(DEVICE)
                for check in (conformance.check_causal_by_perturbation, conformance.check_fast_equals_naive):
                    check(model)
                print(f"  {label:32s} ok", flush=True)
            except Exception as exc:  # report every family, then fail
                failures.append(f"conformance {label}: {exc}")
                print(f"  {label:32s} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)


def check_training(names: list[str], steps: int, compile_: bool, failures: list[str], work: Path) -> None:
    print(f"== {steps} bf16 training steps of each shipped recipe on {DEVICE} (synthetic data of its shape)", flush=True)
    for name in names:
        raw = json.loads((data_dir("hub_configs") / name / "recipe.json").read_text())
        try:
            recipe = short_recipe(raw, steps, compile_)
            use_synthetic(recipe)
            _sync()
            started = time.perf_counter()
            result = train(recipe, work / f"train-{name}", data_root=str(work), progress=False)
            _sync()
            took = time.perf_counter() - started
            lines = [json.loads(x) for x in (work / f"train-{name}" / "metrics.jsonl").read_text().splitlines()]
            loss = next(r["train_bits_per_dim"] for r in reversed(lines) if "train_bits_per_dim" in r)
            ok = result["finished"] and result["precision"] == "bf16" and result["device"].startswith(DEVICE.type) and math.isfinite(loss)
            print(f"  {name:34s} {'ok' if ok else 'FAILED'}  batch {recipe.batch_size:3d}  {steps * recipe.batch_size / took:9.1f} "
                  f"training examples/s (incl. warm-up and one validation)  last train {loss:.4f} bits/dim", flush=True)
            if not ok:
                failures.append(f"train {name}: {result}")
        except Exception as exc:
            failures.append(f"train {name}: {exc}")
            print(f"  {name:34s} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            traceback.print_exc()


def _ddp_worker(rank: int, world: int, port: int, raw: dict[str, Any], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    if raw["device"] == "cuda":
        torch.cuda.set_device(rank)
    if world == 1:  # torchrun's environment alone would not make a group of one: join it here, so DDP and nccl still run
        torch.distributed.init_process_group(backend_for(raw["device"]), rank=0, world_size=1)
    recipe = Recipe.from_dict(raw)
    use_synthetic(recipe)
    train(recipe, out, data_root=str(Path(out).parent), progress=False)
    torch.distributed.destroy_process_group()


def check_ddp(failures: list[str], work: Path) -> None:
    world = torch.cuda.device_count() if DEVICE.type == "cuda" else 2
    print(f"== DDP over {world} process(es) on {DEVICE.type}, {backend_for(DEVICE)}, against one process with the same global batch", flush=True)
    raw = dict(name="ddp", family="pixelcnn", preset="tiny", dataset=SYNTHETIC, batch_size=8 * world, steps=6, lr=3e-3, warmup_steps=1,
               eval_every=3, save_every=3, precision="fp32", seed=1, device=DEVICE.type)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        started = time.perf_counter()
        torch.multiprocessing.spawn(_ddp_worker, args=(world, port, raw, str(work / "ddp")), nprocs=world, join=True)
        took = time.perf_counter() - started
        recipe = Recipe.from_dict(raw)
        use_synthetic(recipe)
        train(recipe, work / "single", data_root=str(work), progress=False)
        ddp = zoo.load(f"local-dir:{work / 'ddp' / 'last'}").state_dict()
        single = zoo.load(f"local-dir:{work / 'single' / 'last'}").state_dict()
        worst = max(float((ddp[k].float() - single[k].float()).abs().max()) for k in single if single[k].is_floating_point())
        ok = worst < 1e-3
        print(f"  {'ok' if ok else 'FAILED'}: {world} rank(s), {took:.1f} s with start-up; largest weight difference {worst:.2e}", flush=True)
        if not ok:
            failures.append(f"ddp: weights differ by {worst}")
    except Exception as exc:
        failures.append(f"ddp: {exc}")
        print(f"  FAILED {type(exc).__name__}: {str(exc)[:500]}", flush=True)


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Any, repeat: int = 3) -> float:
    fn()
    _sync()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync()
    return (time.perf_counter() - started) / repeat


def family_speed(model: Any) -> tuple[float, float, int, str]:
    """``(log_prob examples/s, samples/s, sampling batch, what a sample is)`` for one model on its device."""
    cond = (lambda n: [model.labels[i % len(model.labels)] for i in range(n)]) if model.labels else (lambda n: None)
    g = torch.Generator().manual_seed(0)
    if isinstance(model, ImageModel):
        x, n_s, unit = model.example_batch(64), 8, "images"
        options: dict[str, Any] = {"condition": cond(n_s)}
    elif isinstance(model, TextModel):
        x, n_s, unit = conformance.example(model, 64, length=256), 16, "texts of 200 chars"
        options = {"max_new_chars": 200}
    else:
        x, n_s, unit = torch.rand(16, model.sample_rate, generator=g) * 1.8 - 0.9, 4, "clips of 0.25 s"
        options = {"seconds": 0.25, "condition": cond(n_s)}
    n_lp = len(x)
    lp = _timed(lambda: model.log_prob(x, condition=cond(n_lp)))
    st = _timed(lambda: model.sample(n_s, generator=g, progress=False, **options), repeat=1)
    return n_lp / lp, n_s / st, n_s, unit


def check_speed(failures: list[str]) -> None:
    print(f"== throughput per family on {DEVICE} (fp32 weights)", flush=True)
    published = {zoo.model_info(n)["family"]: n for n in reversed(zoo.list_models(pretrained=True))}
    for family in zoo.list_families():
        name = published.get(family)
        try:
            model = zoo.load(name, device=DEVICE) if name else conformance.randomized(zoo.build(family, "tiny")).to(DEVICE)
            lp, st, n_s, unit = family_speed(model)
            label = name or f"{family} (tiny, random)"
            print(f"  {label:34s} log_prob {lp:9.1f} examples/s   sampling {st:8.2f} samples/s ({unit}, batch {n_s})", flush=True)
        except Exception as exc:
            failures.append(f"speed {family}: {exc}")
            print(f"  {family:34s} FAILED {type(exc).__name__}: {str(exc)[:300]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--recipes", nargs="*", default=None, help="recipes to train (default: every shipped one)")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: conformance, train, ddp, speed")
    p.add_argument("--compile", action="store_true", help="keep the recipes' compile setting (off by default: compiling takes minutes)")
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu": dry-run the logic where there is no GPU
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check")
        return 0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    # Exact comparisons (causality, cached == naive) need fp32 arithmetic, not TF32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    what = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if DEVICE.type == "cuda" else "CPU dry run"
    print(f"gpu_check: {what}, torch {torch.__version__}", flush=True)
    names = args.recipes or sorted(p.parent.name for p in data_dir("hub_configs").glob("*/recipe.json"))
    failures: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "conformance" not in skip:
            check_conformance(failures)
        if "train" not in skip:
            check_training(names, args.steps, args.compile, failures, work)
        if "ddp" not in skip:
            check_ddp(failures, work)
        if "speed" not in skip:
            check_speed(failures)
    print(f"gpu_check: {len(failures)} failure(s) in {time.perf_counter() - started:.0f} s", flush=True)
    for failure in failures:
        print(f"  - {failure[:500]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
