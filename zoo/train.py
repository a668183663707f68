"""The one training loop every family uses (``zoo train``).

A recipe (``hub_configs/<name>/recipe.json``) says everything a run uses. The data order is a
pure function of ``(seed, step)``, so a run resumed from its last state ends with exactly the
weights of an uninterrupted one. States are written atomically and on SIGTERM/SIGINT; they load on
any device (``map_location``), so a run saved on a GPU resumes on a CPU and back.

Runs go where the recipe's ``device`` says (``auto``: CUDA when there is one, else the CPU); under
``torchrun`` each rank takes ``cuda:LOCAL_RANK`` and the process group's backend follows the device
(``nccl`` for CUDA tensors, ``gloo`` for CPU ones).
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import save_pretrained
from .contract import native_bf16
from .datasets import load_dataset
from .errors import ConfigError
from .recipe import Recipe, lr_at

__all__ = ["backend_for", "batch_indices", "collate", "distributed_rank_and_size", "evaluate", "load_state",
           "resolve_device", "train"]

def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the global batch at ``step``: epochs of seeded permutations, so order depends only on (seed, step)."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def collate(dataset: Any, idx: torch.Tensor, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The examples ``idx`` as ``(data, condition-or-None)`` on ``device``: from a TensorDataset, or a dataset with ``batch(idx)``."""
    tensors = dataset.batch(idx) if hasattr(dataset, "batch") else tuple(t[idx] for t in dataset.tensors)
    if device is not None:
        non_blocking = torch.device(device).type == "cuda"
        tensors = tuple(t.to(device, non_blocking=non_blocking) if isinstance(t, torch.Tensor) else t for t in tensors)
    return tensors[0], (tensors[1] if len(tensors) > 1 else None)


# ----------------------------------------------------------------- devices and process groups
def resolve_device(spec: str = "auto") -> torch.device:
    """The device a run uses: ``auto`` is CUDA when available, else the CPU; under torchrun ``auto``/``cuda`` mean ``cuda:LOCAL_RANK``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} was asked for, but torch sees no CUDA device here; use device=cpu or auto")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for, but torch.backends.mps.is_available() is False")
    return device


def backend_for(device: torch.device | str) -> str:
    """The collective backend for tensors on ``device``: ``nccl`` for CUDA, ``gloo`` for everything else."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def distributed_rank_and_size(device: torch.device | str | None = None) -> tuple[int, int]:
    """``(rank, world_size)``, joining the process group that ``torchrun`` describes in the environment.

    The group's backend follows ``device`` (default: what :func:`resolve_device` picks), where the
    tensors it reduces live.
    """
    if dist.is_available() and dist.is_initialized():  # a group joined already (by torchrun's first call, or by the caller)
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    device = resolve_device() if device is None else torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device))
    return dist.get_rank(), dist.get_world_size()


def _all_reduce(tensor: torch.Tensor, op: Any = None) -> torch.Tensor:
    """All-reduce ``tensor`` on the device the group's backend serves (nccl: the current CUDA device), returned where it was."""
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    moved = tensor.to(where)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM if op is None else op)
    return moved.to(tensor.device)


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _autocast(precision: str, device: torch.device) -> tuple[str, str | None]:
    """The precision a run really uses on ``device`` and, when it differs from the recipe's, why."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision 'fp16' runs on CUDA only (with a GradScaler); on {device} use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{torch.cuda.get_device_name(device)} has no bf16; use precision=fp16 (with a GradScaler) or fp32")
    if precision == "bf16" and device.type == "cpu" and not native_bf16():
        reason = ("this CPU has neither AVX512-BF16 nor AMX, so bf16 autocast would be emulated (many times slower "
                  "than fp32); training in fp32 instead (set precision=fp32 to silence this)")
        _warn_once("bf16-cpu", reason)
        return "fp32", reason
    return precision, None


def load_state(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, Any]:
    """A training state as saved on any device, its tensors mapped onto ``device`` (RNG states stay on the CPU)."""
    state = torch.load(path, map_location=torch.device(device), weights_only=True)
    state["rng"] = state["rng"].cpu()
    if state.get("cuda_rng") is not None:
        state["cuda_rng"] = state["cuda_rng"].cpu()
    return state


@torch.no_grad()
def evaluate(model: Any, dataset: Any, *, batch_size: int = 250, limit: int | None = None, progress: bool | None = None) -> dict[str, float]:
    """Exact NLL over a dataset in fp32, on the model's device: nats per example and bits per dimension.

    Under ``torchrun`` each rank scores a contiguous shard and the sums are all-reduced, so every
    rank returns the full-dataset numbers.
    """
    model.eval()
    device = model.device
    rank, world = distributed_rank_and_size(device)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    shard = torch.arange(n).tensor_split(world)[rank]
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # nats, dims
    show = progress if rank == 0 else False
    for idx in tqdm(shard.split(batch_size), desc="eval", disable=None if show is None else not show, leave=False):
        nats, dims = model.training_loss(collate(dataset, idx, device))
        sums[0] += nats.detach().double()
        sums[1] += dims
    if dist.is_available() and dist.is_initialized():
        sums = _all_reduce(sums)
    total_nats, total_dims = sums.tolist()
    return {"examples": n, "nll_nats": total_nats / n, "nats_per_dim": total_nats / total_dims,
            "bits_per_dim": total_nats / total_dims / math.log(2)}


class _Loss(nn.Module):
    """Puts ``training_loss`` behind ``forward`` so DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> tuple[torch.Tensor, int]:
        return self.model.training_loss(batch)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _StopRequested:
    """Turns SIGTERM/SIGINT into a flag checked between steps, so the state saved is consistent."""

    def __init__(self) -> None:
        self.requested = False

    def __enter__(self) -> _StopRequested:
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _load_sets(recipe: Recipe, model: Any, data_root: str | None) -> tuple[Any, Any, Any]:
    train_set = model.prepare_dataset(load_dataset(recipe.dataset, recipe.train_split, data_root), train=True)
    valid_set = finetune_set = None
    if recipe.valid_split:
        valid_set = model.prepare_dataset(load_dataset(recipe.valid_dataset or recipe.dataset, recipe.valid_split, data_root), train=False)
    if recipe.finetune_steps:
        finetune_set = model.prepare_dataset(load_dataset(recipe.finetune_dataset, recipe.finetune_split, data_root), train=True)
        if len(finetune_set) < recipe.batch_size:
            raise ConfigError(f"batch_size {recipe.batch_size} exceeds the {len(finetune_set)} fine-tuning examples")
    if len(train_set) < recipe.batch_size:
        raise ConfigError(f"batch_size {recipe.batch_size} exceeds the {len(train_set)} training examples")
    return train_set, valid_set, finetune_set


def train(recipe: Recipe, output: str | os.PathLike[str], *, data_root: str | None = None, resume: bool = False,
          progress: bool | None = None) -> dict[str, Any]:
    """Run ``recipe``, writing ``state.pt``, ``metrics.jsonl`` and checkpoint folders ``best/`` and ``last/`` in ``output``.

    Under ``torchrun`` every rank takes its slice of the same global batch and DistributedDataParallel
    averages the gradients, so the run follows the single-process one; rank 0 alone writes files.
    """
    device = resolve_device(recipe.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rank, world = distributed_rank_and_size(device)
    if recipe.batch_size % world:
        raise ConfigError(f"batch_size {recipe.batch_size} must be divisible by the {world} processes")
    precision, precision_note = _autocast(recipe.precision, device)
    out = Path(output)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model = recipe.build_model()  # initialised on the CPU from the seed, so every device starts from the same weights
    train_set, valid_set, finetune_set = _load_sets(recipe, model, data_root)
    model.to(device)
    finetune_from = recipe.steps - recipe.finetune_steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=tuple(recipe.betas), weight_decay=recipe.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    ema = copy.deepcopy(model).requires_grad_(False) if recipe.ema_decay else None
    step, best = 0, math.inf
    state_path = out / "state.pt"
    if resume and state_path.is_file():
        state = load_state(state_path, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    n_train = len(train_set)

    distributed = dist.is_available() and dist.is_initialized()  # also a group of one, as benchmarks/gpu_check.py makes
    loss_module: nn.Module = _Loss(model)
    if distributed:
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def forward_loss(batch: Any) -> tuple[torch.Tensor, int]:
        autocast: AbstractContextManager[Any] = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        with autocast:
            return loss_module(batch)

    loss_fn = torch.compile(forward_loss) if recipe.compile else forward_loss

    def save_state() -> None:
        if rank == 0:
            _atomic_torch_save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "step": step, "best": best, "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "device": str(device),
            }, state_path)

    def log(record: dict[str, Any]) -> None:
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def export(folder: str, scored: nn.Module, metrics: dict[str, Any]) -> None:
        if rank == 0:
            save_pretrained(scored, out / folder, recipe=asdict(recipe), metrics=metrics, overwrite=True)

    if rank == 0:
        (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
    log({"step": step, "device": str(device), "world_size": world, "precision": precision,
         **({"requested_precision": recipe.precision, "precision_note": precision_note} if precision_note else {})})
    result: dict[str, Any] = {}
    show = progress if rank == 0 else False
    bar = tqdm(total=recipe.steps, initial=step, desc=recipe.name, disable=None if show is None else not show)
    window, window_steps = torch.zeros((), dtype=torch.float64, device=device), 0
    started = time.time()
    with _StopRequested() as stop:
        while step < recipe.steps:
            # Every rank must agree to stop at the same step, or the others would wait forever.
            flag = torch.tensor([float(stop.requested)])
            if distributed:
                flag = _all_reduce(flag, dist.ReduceOp.MAX)
            if flag.item():
                break
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(recipe, step)
            if finetune_set is not None and step >= finetune_from:
                source, idx = finetune_set, batch_indices(len(finetune_set), recipe.batch_size, recipe.seed, step - finetune_from)
            else:
                source, idx = train_set, batch_indices(n_train, recipe.batch_size, recipe.seed, step)
            nats, dims = loss_fn(collate(source, idx[rank::world], device))
            loss = nats / dims
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if ema is not None:
                decay = min(recipe.ema_decay, (1 + step) / (10 + step)) if recipe.ema_warmup else recipe.ema_decay
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                        pe.lerp_(pm, 1 - decay)
            step += 1
            window += loss.detach().double()  # summed on the device: no host sync per step
            window_steps += 1
            bar.update(1)
            if step % 50 == 0 or step == recipe.steps:
                mean = float(window) / window_steps / math.log(2)
                bar.set_postfix(bits_per_dim=f"{mean:.4f}")
                log({"step": step, "train_bits_per_dim": mean, "lr": lr_at(recipe, step - 1), "elapsed_s": round(time.time() - started, 1)})
                window.zero_()
                window_steps = 0
            if valid_set is not None and (step % recipe.eval_every == 0 or step == recipe.steps):
                scored = ema if ema is not None else model
                metrics = evaluate(scored, valid_set, limit=recipe.eval_examples, progress=False)
                log({"step": step, "valid": metrics})
                if rank == 0:
                    bar.write(f"step {step}: valid {metrics['nll_nats']:.3f} nats, {metrics['bits_per_dim']:.4f} bits/dim")
                if metrics["nll_nats"] < best:
                    best = metrics["nll_nats"]
                    export("best", scored, {"valid": metrics, "step": step})
                result = {"step": step, "valid": metrics, "best_valid_nll_nats": best}
            if step % recipe.save_every == 0 or step == recipe.steps:
                save_state()
        save_state()
    bar.close()
    final = ema if ema is not None else model
    if valid_set is None:
        export("best", final, {"step": step})
    export("last", final, {"step": step})
    result.update({"step": step, "finished": step >= recipe.steps, "output": str(out), "device": str(device), "precision": precision})
    return result
