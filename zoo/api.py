"""The contract every zoo model answers, whatever its modality.

``AutoregressiveModel`` fixes the public calls (``log_prob``, ``bits_per_dim``, ``sample``,
``complete``, ``save_pretrained``); a modality base class (``ImageModel`` here) turns them into a
small set of hooks a family implements. Families never re-implement validation, batching of
conditions, progress bars or seeding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import InvalidInputError
from .spaces import ImageSpace

if TYPE_CHECKING:
    from os import PathLike

    from .registry import Entry

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

    def complete(self, partial: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def save_pretrained(self, directory: str | PathLike[str], **kwargs: Any) -> None:
        """Write this model in the checkpoint format (config.json, model.safetensors, README.md)."""
        from .hub import save_pretrained

        save_pretrained(self, directory, **kwargs)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, params={self.num_parameters():,}"


def _progress(total: int, progress: bool | None, desc: str) -> tqdm:
    # tqdm's disable=None shows the bar only on a terminal: the behaviour we want by default.
    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False, unit="px")


class ImageModel(AutoregressiveModel):
    """Raster-order image models. A family implements ``forward``, ``per_dim_log_prob`` and ``sample_pixel``."""

    modality: ClassVar[str] = "image"

    @property
    def space(self) -> ImageSpace:
        c = self.config
        return ImageSpace(c.channels, c.height, c.width, c.levels)

    # ---- hooks a family implements
    def per_dim_log_prob(self, levels: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(x_t | x_<t)`` for integer ``levels [N,C,H,W]``, in float32 nats, differentiable."""
        raise NotImplementedError

    def sample_pixel(
        self, levels: torch.Tensor, cond: torch.Tensor | None, row: int, col: int,
        temperature: float, generator: torch.Generator | None, naive: bool,
    ) -> None:
        """Sample every channel of pixel ``(row, col)`` given the pixels before it, writing into ``levels``."""
        raise NotImplementedError

    # ---- contract
    def dims(self, x: Any = None) -> int:
        return self.space.dims

    def example_batch(self, n: int) -> torch.Tensor:
        """``n`` random valid images: a cheap input for smoke tests and publish-time validation."""
        return torch.randint(0, self.space.levels, (n, *self.space.shape), dtype=torch.uint8)

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        x, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
        levels = x.to(self.device).long()
        cond = None if self.num_conditions == 0 or cond is None else cond.to(self.device).long()
        return -self.per_dim_log_prob(levels, cond).sum(), levels.numel()

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        levels = self.space.validate(x).to(self.device)
        cond = self.condition_ids(condition, levels.shape[0])
        lp = self.per_dim_log_prob(levels, cond)
        return lp if per_dim else lp.flatten(1).sum(1)

    @torch.inference_mode()
    def sample(
        self, n: int, *, condition: Condition = None, temperature: float = 1.0,
        generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images as ``uint8 [n, C, H, W]`` (levels 0..levels-1)."""
        if not isinstance(n, int) or n < 1:
            raise InvalidInputError(f"n must be a positive int, got {n!r}")
        levels = torch.zeros((n, *self.space.shape), dtype=torch.long, device=self.device)
        return self._fill(levels, 0, condition, temperature, generator, progress, naive)

    @torch.inference_mode()
    def complete(
        self, x: torch.Tensor, *, rows: int, condition: Condition = None, temperature: float = 1.0,
        generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False,
    ) -> torch.Tensor:
        """Keep the first ``rows`` rows of ``x`` (full-size images) and sample the rest."""
        levels = self.space.validate(x).to(self.device).clone()
        if not isinstance(rows, int) or not 0 <= rows <= self.space.height:
            raise InvalidInputError(f"rows must be an int in 0..{self.space.height}, got {rows!r}")
        return self._fill(levels, rows, condition, temperature, generator, progress, naive)

    def _fill(self, levels, first_row, condition, temperature, generator, progress, naive) -> torch.Tensor:
        if not temperature > 0:
            raise InvalidInputError(f"temperature must be > 0, got {temperature!r}")
        cond = self.condition_ids(condition, levels.shape[0])
        h, w = self.space.height, self.space.width
        with _progress((h - first_row) * w, progress, f"sampling {self.family}") as bar:
            for row in range(first_row, h):
                for col in range(w):
                    self.sample_pixel(levels, cond, row, col, float(temperature), generator, naive)
                    bar.update(1)
        return levels.to(torch.uint8)
