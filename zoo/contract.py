"""The contract every zoo model answers, whatever its modality.

``AutoregressiveModel`` fixes the public calls (``log_prob``, ``bits_per_dim``, ``sample``,
``complete``, ``save_pretrained``); a modality base class (``zoo.image``, ``zoo.audio``,
``zoo.text``) turns them into a small set of hooks a family implements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from os import PathLike
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import save_pretrained
from .errors import InvalidInputError
from .registry import Entry

__all__ = ["AutoregressiveModel", "Condition", "check_sampling", "progress_bar", "sample_logits"]

Condition = torch.Tensor | Sequence[str] | Sequence[int] | str | int | None


class AutoregressiveModel(nn.Module):
    """Base class of every family. Subclasses set ``family``/``modality`` and take one config dataclass."""

    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.entry: Entry | None = None

    # ----------------------------------------------------------------- conditions
    @property
    def labels(self) -> list[str]:
        """Names of the condition values (classes, speakers) in id order; empty when unconditional."""
        return list(getattr(self.config, "labels", None) or [])

    @property
    def num_conditions(self) -> int:
        return len(self.labels)

    def condition_ids(self, condition: Condition, n: int) -> torch.Tensor | None:
        """Resolve a condition given by name or id, single or per example, into ``LongTensor[n]``."""
        if self.num_conditions == 0:
            if condition is not None:
                raise InvalidInputError(f"{self.family} model is unconditional; pass condition=None")
            return None
        if condition is None:
            raise InvalidInputError(f"this model is conditional; pass condition= one of {self.labels} (by name or id)")
        if isinstance(condition, (str, int)):
            condition = [condition]
        if isinstance(condition, torch.Tensor):
            if condition.dtype.is_floating_point or condition.dim() > 1:
                raise InvalidInputError(f"condition ids must be a LongTensor[N], got {condition.dtype} {list(condition.shape)}")
            ids = condition.long().reshape(-1).cpu()
        else:
            resolved = []
            for value in condition:
                if isinstance(value, str):
                    if value not in self.labels:
                        raise InvalidInputError(f"unknown condition {value!r}; this model knows {self.labels}")
                    resolved.append(self.labels.index(value))
                else:
                    resolved.append(int(value))
            ids = torch.tensor(resolved, dtype=torch.long)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_conditions):
            raise InvalidInputError(f"condition ids must be in 0..{self.num_conditions - 1}, got {ids.tolist()}")
        if ids.numel() == 1:
            ids = ids.expand(n)
        if ids.numel() != n:
            raise InvalidInputError(f"got {ids.numel()} condition values for a batch of {n}; give one or {n}")
        return ids.to(self.device)

    # ----------------------------------------------------------------- devices
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ----------------------------------------------------------------- contract
    def log_prob(self, x: Any, *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        """Exact log-likelihood in nats: ``[N]`` per example, or each ``log p(x_t | x_<t)`` with ``per_dim``."""
        raise NotImplementedError

    def dims(self, x: Any) -> int | torch.Tensor:
        """Number of dimensions each example has (for bits/dim)."""
        raise NotImplementedError

    def bits_per_dim(self, x: Any, *, condition: Condition = None) -> torch.Tensor:
        """Negative log-likelihood in bits per dimension, ``[N]``."""
        return -self.log_prob(x, condition=condition) / (self.dims(x) * math.log(2))

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        """Summed NLL in nats over a training batch and the number of dimensions it covers (differentiable)."""
        raise NotImplementedError

    def sample(self, n: int, **kwargs: Any) -> Any:
        raise NotImplementedError

    def example_batch(self, n: int) -> Any:
        raise NotImplementedError

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        """Turn a dataset adapter's output into batches this model trains or is evaluated on."""
        return raw

    def complete(self, partial: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def save_pretrained(self, directory: str | PathLike[str], **kwargs: Any) -> None:
        """Write this model in the checkpoint format (config.json, model.safetensors, README.md)."""
        save_pretrained(self, directory, **kwargs)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, params={self.num_parameters():,}"


def progress_bar(total: int, progress: bool | None, desc: str, unit: str = "step") -> tqdm:
    # tqdm's disable=None shows the bar only on a terminal: the behaviour we want by default.
    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False, unit=unit)


def sample_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one index per row of ``logits [N, V]`` after temperature, top-k and nucleus (top-p) filtering."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0:
        raise InvalidInputError(f"temperature must be > 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidInputError(f"top_p must be in (0, 1] or None, got {top_p!r}")


