"""The contract every zoo model answers, whatever its modality, and the one generation driver.

``AutoregressiveModel`` fixes the public calls (``log_prob``, ``bits_per_dim``, ``sample``,
``complete``, ``save_pretrained``), resolves conditions and checks sampling arguments. A modality
base class (``zoo.image``, ``zoo.audio``, ``zoo.text``) maps its data onto *steps* (pixels and
channels, samples, tokens) and a family supplies a network and an output distribution.

Generation is one loop for every family: at each step ask a :class:`Cache` for the output
parameters, draw from the distribution with uniforms drawn up front, record the value. The naive
path is a cache too (a full forward per step), the reference every fast cache is tested against.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import save_pretrained
from .distributions import Distribution
from .errors import InvalidInputError
from .registry import Entry

__all__ = ["AutoregressiveModel", "Cache", "Condition", "check_count", "check_sampling", "generation_threads", "native_bf16", "progress_bar",
           "warn_if_emulated_bf16"]

Condition = torch.Tensor | Sequence[str] | Sequence[int] | str | int | None

# Per-step work (parameters x batch) below which generation runs on one CPU thread: its ops are
# matrix-vector sized, and a second thread only adds OpenMP hand-offs (10-100x slower per op when
# another job keeps a core busy).
SMALL_STEP_WORK = 5e7


class Cache(ABC):
    """Incremental generation state with the one interface every sampler implements.

    Steps are the modality's dimensions in generation order. ``params_at(t)`` returns the output
    parameters ``[N, p]`` of step ``t`` once every earlier step has been recorded with
    ``update(t, value)``. A cache may fuse the whole loop (``generate``) where per-step Python
    calls dominate, as long as it draws the same values from the same uniforms.
    """

    @abstractmethod
    def params_at(self, t: int) -> torch.Tensor:
        """Output-distribution parameters ``[N, p]`` for step ``t``."""

    @abstractmethod
    def update(self, t: int, value: torch.Tensor) -> None:
        """Record the value drawn at step ``t`` (``[N]``, or ``[N, C]`` for a joint draw)."""

    def finished(self) -> bool:
        """Whether generation may stop early (every text hit its stop string)."""
        return False

    def generate(self, distribution: Distribution, first: int, stop: int, uniforms: torch.Tensor, temperature: float,
                 bar: tqdm, options: dict[str, Any]) -> None:
        """Draw steps ``[first, stop)``, step ``t`` from ``uniforms[t - first]``: the one generation loop."""
        for t in range(first, stop):
            self.update(t, distribution.sample(self.params_at(t), uniforms[t - first], temperature, **options))
            bar.update(1)
            if self.finished():
                break


def progress_bar(total: int, progress: bool | None, desc: str, unit: str = "step") -> tqdm:
    # tqdm's disable=None shows the bar only on a terminal: the behaviour we want by default.
    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False, unit=unit)


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum`` (bools and floats refused), else InvalidInputError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_sampling(temperature: Any, top_k: Any = None, top_p: Any = None) -> float:
    """Validated sampling options; returns the temperature as a float."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise InvalidInputError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise InvalidInputError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")
    return float(temperature)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16). Elsewhere (AVX2-only CPUs) bf16 matmuls and
    convolutions are emulated and run many times slower than float32 (36x measured for PixelCNN++ scoring)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: nothing to read, assume the vendor libraries know best
        return True
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


_warned_bf16 = False


def warn_if_emulated_bf16(model: nn.Module) -> None:
    """Say once per process that a bfloat16 model on a CPU without native bf16 runs far slower than in float32."""
    global _warned_bf16
    param = next(model.parameters())
    if not _warned_bf16 and param.dtype == torch.bfloat16 and param.device.type == "cpu" and not native_bf16():
        _warned_bf16 = True
        warnings.warn("this CPU has no native bfloat16 (no AMX or AVX512-BF16): bf16 runs emulated, many times slower than "
                      "float32; use model.float() (zoo.load(..., dtype=torch.bfloat16) loads float32 here for that reason)", stacklevel=3)


def _memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


@contextmanager
def generation_threads(model: nn.Module, n: int) -> Iterator[None]:
    """One intra-op thread for small per-step work on CPU, restored afterwards (no process-wide change survives the call)."""
    device = next(model.parameters()).device
    small = device.type == "cpu" and sum(p.numel() for p in model.parameters()) * n < SMALL_STEP_WORK
    threads = torch.get_num_threads()
    if small and threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


class AutoregressiveModel(nn.Module, ABC):
    """Base class of every family: conditions, devices, the generation driver and checkpoint saving.

    A family's ``__init__`` hands its modality base the config, the data space, the output
    ``distribution`` and the condition ``labels``; ``register_family`` sets ``family``.
    """

    family: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    extra_files: ClassVar[tuple[str, ...]] = ()  # files a checkpoint keeps besides config and weights (GPT-2: its tokenizer)
    transformers_model_type: ClassVar[str | None] = None  # a transformers config.json ``model_type`` this family reads

    def __init__(self, config: Any, *, distribution: Distribution, labels: Sequence[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.distribution = distribution
        self.labels: list[str] = list(labels or [])
        self.entry: Entry | None = None

    # ----------------------------------------------------------------- conditions
    @property
    def num_conditions(self) -> int:
        return len(self.labels)

    def condition_ids(self, condition: Condition, n: int) -> torch.Tensor | None:
        """Resolve a condition given by name or id, single or per example, into ``LongTensor[n]`` on the model's device."""
        if self.num_conditions == 0:
            if condition is not None:
                raise InvalidInputError(f"{self.family} model is unconditional; pass condition=None, got {condition!r}")
            return None
        accepted = f"a name in {self.labels} or an id in 0..{self.num_conditions - 1}, one or one per example"
        if condition is None:
            raise InvalidInputError(f"this model is conditional; pass condition= {accepted}")
        if isinstance(condition, torch.Tensor):
            if condition.dtype.is_floating_point or condition.dtype.is_complex or condition.dtype == torch.bool or condition.dim() > 1:
                raise InvalidInputError(f"condition ids must be an integer LongTensor[N], got {condition.dtype} {list(condition.shape)}")
            ids = condition.long().reshape(-1).cpu()
        else:
            values = [condition] if isinstance(condition, (str, int)) else condition
            if not isinstance(values, Sequence) or not values:
                raise InvalidInputError(f"condition must be {accepted}; got {condition!r}")
            resolved = []
            for value in values:
                if isinstance(value, str) and value in self.labels:
                    resolved.append(self.labels.index(value))
                elif isinstance(value, int) and not isinstance(value, bool):
                    resolved.append(value)
                else:
                    raise InvalidInputError(f"unknown condition {value!r}; pass {accepted}")
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

    # ----------------------------------------------------------------- the contract
    @abstractmethod
    def log_prob(self, x: Any, *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        """Exact log-likelihood in nats: ``[N]`` per example, or each ``log p(x_t | x_<t)`` with ``per_dim``."""

    @abstractmethod
    def dims(self, x: Any) -> int | torch.Tensor:
        """Number of scored dimensions of each example (for bits/dim)."""

    @abstractmethod
    def sample(self, n: int, **kwargs: Any) -> Any:
        """``n`` examples drawn with the cached sampler (``naive=True``: a full forward per step)."""

    @abstractmethod
    def complete(self, partial: Any, **kwargs: Any) -> Any:
        """The known part followed by sampled values; the known part comes back unchanged."""

    @abstractmethod
    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        """Summed NLL in nats over a training batch and the number of dimensions it covers (differentiable)."""

    @abstractmethod
    def example_batch(self, n: int) -> Any:
        """``n`` valid random inputs: a cheap batch for smoke tests and publish-time validation."""

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        """Turn a dataset adapter's output into batches this model trains or is evaluated on."""
        return raw

    def bits_per_dim(self, x: Any, *, condition: Condition = None) -> torch.Tensor:
        """Negative log-likelihood in bits per dimension, ``[N]``."""
        return -self.log_prob(x, condition=condition) / (self.dims(x) * math.log(2))

    @staticmethod
    def info_from_config(config: dict[str, Any]) -> dict[str, Any]:
        """Facts ``zoo.model_info`` derives from an entry's config (WaveNet: its receptive field); none by default."""
        return {}

    def save_extra(self, folder: Path) -> None:
        """Write the files named in ``extra_files`` into a checkpoint folder being saved (none by default)."""

    def load_extra(self, folder: Path) -> None:
        """Read the files named in ``extra_files`` from a checkpoint folder just loaded (none by default)."""

    def save_pretrained(self, directory: str | PathLike[str], **kwargs: Any) -> Any:
        """Write this model in the checkpoint format (config.json, model.safetensors, README.md)."""
        return save_pretrained(self, directory, **kwargs)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, params={self.num_parameters():,}"

    # ----------------------------------------------------------------- the generation driver
    def check_generation_size(self, n: int, steps: int, per_step_bytes: int) -> None:
        """Refuse a generation whose buffers cannot fit in memory, before allocating them."""
        need = n * max(steps, 1) * per_step_bytes
        have = _memory_bytes(self.device)
        if need > have:
            raise InvalidInputError(f"generating {n} x {steps:,} steps needs about {need / 2**30:.1f} GiB, more than the "
                                    f"{have / 2**30:.1f} GiB of memory here; ask for fewer or shorter samples")

    def run_generation(self, cache: Cache, first: int, stop: int, n: int, temperature: float, generator: torch.Generator | None,
                       progress: bool | None, unit: str, options: dict[str, Any] | None = None) -> None:
        """Draw steps ``[first, stop)`` of a batch of ``n`` through ``cache`` (the one driver every modality calls).

        All uniforms are drawn up front from ``generator`` (on its own device), so every cache
        consumes the randomness identically: the naive and the cached path draw the same values.
        """
        warn_if_emulated_bf16(self)
        k = self.distribution.uniforms
        gen_device = generator.device if generator is not None else self.device
        uniforms = torch.rand(max(0, stop - first), n, k, generator=generator, device=gen_device).to(self.device)
        with generation_threads(self, n), progress_bar(stop - first, progress, f"sampling {self.family}", unit) as bar:
            cache.generate(self.distribution, first, stop, uniforms, temperature, bar, options or {})
