"""The one training loop every family uses (``zoo train``).

A recipe (``hub_configs/<name>/recipe.json``) says everything a run uses. The data order is a
pure function of ``(seed, step)``, so a run resumed from its last state ends with exactly the
weights of an uninterrupted one. States are written atomically and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .datasets import load_dataset
from .errors import ConfigError
from .registry import build

PRECISIONS = ("bf16", "fp32")


@dataclass
class Recipe:
    name: str
    family: str
    dataset: str
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    valid_split: str | None = "valid"
    valid_dataset: str | None = None  # None: ``dataset``; e.g. exact pixels while training on a lossy copy
    finetune_dataset: str | None = None  # the last ``finetune_steps`` steps draw from this dataset instead
    finetune_split: str = "train"
    finetune_steps: int = 0
    batch_size: int = 64
    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" | "exponential" (to min_lr_ratio at the end) | "constant"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    ema_decay: float | None = None
    # Ramp the EMA decay as min(ema_decay, (1 + step) / (10 + step)), as timm's ModelEmaV3 warmup does:
    # without it the random initial weights keep a share of ema_decay ** steps (13% after 2,000 steps at 0.999).
    ema_warmup: bool = True
    precision: str = "bf16"  # "bf16" (autocast) | "fp32" for training; evaluation is always fp32
    compile: bool = False
    seed: int = 0
    eval_every: int = 500
    eval_examples: int | None = None  # validation subset used during training (None: all)
    save_every: int = 200

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; accepted: {', '.join(PRECISIONS)}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        accepted = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - accepted - {"notes"})
        if unknown:
            raise ConfigError(f"unknown recipe field(s) {unknown}; accepted: {sorted(accepted)}")
        return cls(**{k: v for k, v in raw.items() if k in accepted})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_overrides(self, assignments: list[str]) -> Recipe:
        """Apply ``key=value`` strings (values parsed as JSON when they parse); ``config.key`` reaches the config."""
        raw = asdict(self)
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            if key.startswith("config."):
                raw["config"][key.removeprefix("config.")] = parsed
            elif key in raw:
                raw[key] = parsed
            else:
                raise ConfigError(f"unknown recipe field {key!r}; accepted: {sorted(raw)} or config.<field>")
        return Recipe.from_dict(raw)

    def build_model(self) -> Any:
        return build(self.family, self.preset, **self.config)


def lr_at(recipe: Recipe, step: int) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    if recipe.schedule == "constant":
        return recipe.lr
    progress = min(1.0, (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps))
    if recipe.schedule == "exponential":
        return recipe.lr * recipe.min_lr_ratio**progress
    if recipe.schedule != "cosine":
        raise ConfigError(f"unknown schedule {recipe.schedule!r}; accepted: cosine, exponential, constant")
    floor = recipe.lr * recipe.min_lr_ratio
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the global batch at ``step``: epochs of seeded permutations, so order depends only on (seed, step)."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def collate(dataset: Any, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The examples ``idx`` as ``(data, condition-or-None)``: from a TensorDataset, or a dataset with ``batch(idx)``."""
    tensors = dataset.batch(idx) if hasattr(dataset, "batch") else tuple(t[idx] for t in dataset.tensors)
    return tensors[0], (tensors[1] if len(tensors) > 1 else None)


@torch.no_grad()
def evaluate(model: Any, dataset: Any, *, batch_size: int = 250, limit: int | None = None, progress: bool | None = None) -> dict[str, float]:
    """Exact NLL over a dataset in fp32: nats per example and bits per dimension.

    Under ``torchrun`` each rank scores a contiguous shard and the sums are all-reduced, so every
    rank returns the full-dataset numbers.
    """
    model.eval()
    rank, world = distributed_rank_and_size()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    shard = torch.arange(n).tensor_split(world)[rank]
    sums = torch.zeros(2, dtype=torch.float64)  # nats, dims
    show = progress if rank == 0 else False
    for idx in tqdm(shard.split(batch_size), desc="eval", disable=None if show is None else not show, leave=False):
        nats, dims = model.training_loss(collate(dataset, idx))
        sums += torch.tensor([float(nats), dims], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(sums)
    total_nats, total_dims = sums.tolist()
    return {"examples": n, "nll_nats": total_nats / n, "nats_per_dim": total_nats / total_dims,
            "bits_per_dim": total_nats / total_dims / math.log(2)}


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)``, joining the process group that ``torchrun`` describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


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


def train(recipe: Recipe, output: str | os.PathLike[str], *, data_root: str | None = None, resume: bool = False,
          progress: bool | None = None) -> dict[str, Any]:
    """Run ``recipe``, writing ``state.pt``, ``metrics.jsonl`` and checkpoint folders ``best/`` and ``last/`` in ``output``.

    Under ``torchrun`` every rank takes its slice of the same global batch and DistributedDataParallel
    averages the gradients, so the run follows the single-process one; rank 0 alone writes files.
    """
    from .checkpoint import save_pretrained

    rank, world = distributed_rank_and_size()
    if recipe.batch_size % world:
        raise ConfigError(f"batch_size {recipe.batch_size} must be divisible by the {world} processes")
    out = Path(output)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model = recipe.build_model()
    train_set = model.prepare_dataset(load_dataset(recipe.dataset, recipe.train_split, data_root), train=True)
    valid_set = None
    if recipe.valid_split:
        valid_set = model.prepare_dataset(load_dataset(recipe.valid_dataset or recipe.dataset, recipe.valid_split, data_root), train=False)
    finetune_set = None
    if recipe.finetune_steps:
        if not recipe.finetune_dataset or not 0 < recipe.finetune_steps <= recipe.steps:
            raise ConfigError("finetune_steps needs finetune_dataset and must be in 1..steps")
        finetune_set = model.prepare_dataset(load_dataset(recipe.finetune_dataset, recipe.finetune_split, data_root), train=True)
        if len(finetune_set) < recipe.batch_size:
            raise ConfigError(f"batch_size {recipe.batch_size} exceeds the {len(finetune_set)} fine-tuning examples")
    finetune_from = recipe.steps - recipe.finetune_steps
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=tuple(recipe.betas), weight_decay=recipe.weight_decay)
    ema = copy.deepcopy(model).requires_grad_(False) if recipe.ema_decay else None
    step, best = 0, math.inf
    state_path = out / "state.pt"
    if resume and state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["rng"])
    n_train = len(train_set)
    if n_train < recipe.batch_size:
        raise ConfigError(f"batch_size {recipe.batch_size} exceeds the {n_train} training examples")

    loss_module: nn.Module = _Loss(model)
    if world > 1:
        loss_module = nn.parallel.DistributedDataParallel(loss_module)

    def forward_loss(batch: Any) -> tuple[torch.Tensor, int]:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if recipe.precision == "bf16" else nullcontext()
        with autocast:
            return loss_module(batch)

    loss_fn = torch.compile(forward_loss) if recipe.compile else forward_loss

    def save_state() -> None:
        if rank == 0:
            _atomic_torch_save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "step": step, "best": best, "rng": torch.get_rng_state(),
            }, state_path)

    def log(record: dict[str, Any]) -> None:
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def export(folder: str, scored: nn.Module, metrics: dict[str, Any]) -> None:
        if rank == 0:
            save_pretrained(scored, out / folder, recipe=asdict(recipe), metrics=metrics)

    if rank == 0:
        (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
    result: dict[str, Any] = {}
    show = progress if rank == 0 else False
    bar = tqdm(total=recipe.steps, initial=step, desc=recipe.name, disable=None if show is None else not show)
    window: list[float] = []
    started = time.time()
    with _StopRequested() as stop:
        while step < recipe.steps:
            # Every rank must agree to stop at the same step, or the others would wait forever.
            flag = torch.tensor([float(stop.requested)])
            if world > 1:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item():
                break
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = lr_at(recipe, step)
            if finetune_set is not None and step >= finetune_from:
                source, idx = finetune_set, batch_indices(len(finetune_set), recipe.batch_size, recipe.seed, step - finetune_from)
            else:
                source, idx = train_set, batch_indices(n_train, recipe.batch_size, recipe.seed, step)
            nats, dims = loss_fn(collate(source, idx[rank::world]))
            loss = nats / dims
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            if ema is not None:
                decay = min(recipe.ema_decay, (1 + step) / (10 + step)) if recipe.ema_warmup else recipe.ema_decay
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                        pe.lerp_(pm, 1 - decay)
            step += 1
            window.append(float(loss.detach()) / math.log(2))
            bar.update(1)
            if step % 50 == 0 or step == recipe.steps:
                bar.set_postfix(bits_per_dim=f"{sum(window) / len(window):.4f}")
                log({"step": step, "train_bits_per_dim": sum(window) / len(window), "lr": lr_at(recipe, step - 1),
                     "elapsed_s": round(time.time() - started, 1)})
                window.clear()
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
    result.update({"step": step, "finished": step >= recipe.steps, "output": str(out)})
    return result
