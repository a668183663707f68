"""Training recipes: everything a run uses, validated field by field before any work starts.

A recipe is ``hub_configs/<name>/recipe.json`` (or any JSON file); ``--set key=value`` overrides
reach its fields and, as ``config.key``, the family config.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .datasets import TEST_SPLITS
from .errors import ConfigError
from .registry import build

__all__ = ["PRECISIONS", "SCHEDULES", "Recipe", "lr_at"]

PRECISIONS = ("bf16", "fp16", "fp32")
SCHEDULES = ("cosine", "exponential", "constant")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Recipe:
    name: str
    family: str
    dataset: str
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    valid_split: str | None = "valid"  # held-out training data; a test split is refused
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
    # Autocast for training: "bf16" (CPU and CUDA), "fp16" (CUDA only, with a GradScaler) or "fp32"; evaluation is always fp32.
    precision: str = "bf16"
    device: str = "auto"  # "auto" (cuda when available, else cpu) | "cpu" | "cuda" | "cuda:N" | "mps"
    compile: bool = False
    seed: int = 0
    eval_every: int = 500
    eval_examples: int | None = None  # validation subset used during training (None: all)
    save_every: int = 200

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        for name in ("name", "family", "dataset", "train_split", "finetune_split"):
            self._check(name, isinstance(getattr(self, name), str) and getattr(self, name) != "", "a non-empty string")
        for name in ("preset", "valid_split", "valid_dataset", "finetune_dataset"):
            self._check(name, getattr(self, name) is None or isinstance(getattr(self, name), str) and getattr(self, name) != "",
                        "null or a non-empty string")
        self._check("config", isinstance(self.config, dict), "an object of config fields")
        for name in ("train_split", "valid_split", "finetune_split"):
            if getattr(self, name) in TEST_SPLITS:
                raise ConfigError(f"recipe field {name} is {getattr(self, name)!r}, a test split: a run must neither train on "
                                  "nor choose anything on test data; validate on a held-out split such as 'valid'")
        for name, lowest in (("steps", 1), ("batch_size", 1), ("eval_every", 1), ("save_every", 1), ("warmup_steps", 0),
                             ("finetune_steps", 0), ("seed", 0)):
            self._check(name, _is_int(getattr(self, name)) and getattr(self, name) >= lowest, f"an integer >= {lowest}")
        self._check("eval_examples", self.eval_examples is None or _is_int(self.eval_examples) and self.eval_examples >= 1,
                    "null or an integer >= 1")
        self._check("lr", _is_real(self.lr) and self.lr > 0, "a number > 0")
        self._check("min_lr_ratio", _is_real(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1, "a number in [0, 1]")
        self._check("weight_decay", _is_real(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        self._check("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}")
        self._check("betas", isinstance(self.betas, tuple) and len(self.betas) == 2 and all(_is_real(b) and 0 <= b < 1 for b in self.betas),
                    "two numbers in [0, 1), e.g. [0.9, 0.999]")
        self._check("grad_clip", self.grad_clip is None or _is_real(self.grad_clip) and self.grad_clip > 0, "null or a number > 0")
        self._check("ema_decay", self.ema_decay is None or _is_real(self.ema_decay) and 0 < self.ema_decay < 1,
                    "null or a number in (0, 1), e.g. 0.999")
        for name in ("ema_warmup", "compile"):
            self._check(name, isinstance(getattr(self, name), bool), "true or false")
        self._check("precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}")
        self._check("device", isinstance(self.device, str) and _DEVICE.fullmatch(self.device) is not None,
                    "auto, cpu, cuda, cuda:N or mps")
        if self.precision == "fp16" and self.device in ("cpu", "mps"):
            raise ConfigError(f"precision 'fp16' runs on CUDA only (with a GradScaler); on device {self.device!r} use bf16 or fp32")
        if self.finetune_steps and (not self.finetune_dataset or self.finetune_steps > self.steps):
            raise ConfigError(f"finetune_steps {self.finetune_steps} needs finetune_dataset and must be in 1..steps ({self.steps})")
        if self.finetune_dataset and not self.finetune_steps:
            raise ConfigError(f"finetune_dataset {self.finetune_dataset!r} is set but finetune_steps is 0; give 1..steps or drop it")

    def _check(self, name: str, ok: bool, accepted: str) -> None:
        if not ok:
            raise ConfigError(f"recipe field {name} is {getattr(self, name)!r}; accepted: {accepted}")

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
    floor = recipe.lr * recipe.min_lr_ratio
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
