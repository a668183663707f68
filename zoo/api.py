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
from .spaces import AudioSpace, CharSpace, ImageSpace

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

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        """Turn a dataset adapter's output into batches this model trains or is evaluated on."""
        return raw

    def complete(self, partial: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def save_pretrained(self, directory: str | PathLike[str], **kwargs: Any) -> None:
        """Write this model in the checkpoint format (config.json, model.safetensors, README.md)."""
        from .hub import save_pretrained

        save_pretrained(self, directory, **kwargs)

    def extra_repr(self) -> str:
        return f"family={self.family!r}, params={self.num_parameters():,}"


def _progress(total: int, progress: bool | None, desc: str, unit: str = "step") -> tqdm:
    # tqdm's disable=None shows the bar only on a terminal: the behaviour we want by default.
    return tqdm(total=total, desc=desc, disable=None if progress is None else not progress, leave=False, unit=unit)


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
        temperature: float, generator: torch.Generator | None, state: Any,
    ) -> None:
        """Sample every channel of pixel ``(row, col)`` given the pixels before it, writing into ``levels``.

        ``state`` is what ``sampling_state`` returned (None on the naive path, which must run the
        network on the whole image: the reference that fast paths are tested against).
        """
        raise NotImplementedError

    def sampling_state(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> Any:
        """Caches a fast sampler carries from pixel to pixel (layer activations, recurrent state).

        Called once per ``sample``/``complete`` unless ``naive=True``; ``levels`` already holds the
        known rows ``[0, first_row)``. The default keeps nothing.
        """
        return None

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
        _check_sampling(temperature, None, None)
        cond = self.condition_ids(condition, levels.shape[0])
        h, w = self.space.height, self.space.width
        state = None if naive else self.sampling_state(levels, cond, first_row)
        with _progress((h - first_row) * w, progress, f"sampling {self.family}", unit="px") as bar:
            for row in range(first_row, h):
                for col in range(w):
                    self.sample_pixel(levels, cond, row, col, float(temperature), generator, state)
                    bar.update(1)
        return levels.to(torch.uint8)


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


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0:
        raise InvalidInputError(f"temperature must be > 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidInputError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InvalidInputError(f"top_p must be in (0, 1] or None, got {top_p!r}")


class TextModel(AutoregressiveModel):
    """Character language models. A family implements ``forward`` and the cached ``step``.

    A text is scored from a begin-of-text token (BOS). A model with a finite ``context`` C sees a
    window of at most C tokens: once full, the window jumps forward by ``slide`` tokens (S), so the
    prediction at input position j uses tokens ``[start(j), j]`` with ``start(j) = 0`` for j < C and
    ``((j - C) // S + 1) * S`` after. Scoring, naive sampling and cached sampling all use this one
    rule, which is why they agree exactly and why long texts score at one forward per S tokens.
    """

    modality: ClassVar[str] = "text"

    @property
    def space(self) -> CharSpace:
        return CharSpace(self.config.vocab)

    @property
    def context(self) -> int | None:
        return getattr(self.config, "context", None)

    @property
    def slide(self) -> int:
        return max(1, getattr(self.config, "slide", None) or (self.context or 4) // 4)

    def window_start(self, j: int) -> int:
        c = self.context
        return 0 if c is None or j < c else ((j - c) // self.slide + 1) * self.slide

    # ---- hooks a family implements
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, T, V]`` over the vocabulary (never BOS) for token ids ``[N, T]`` (T <= context)."""
        raise NotImplementedError

    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Continue from ``cache`` (None: empty) with ``ids [N, k]``; returns logits ``[N, k, V]`` and the new cache."""
        raise NotImplementedError

    # ---- helpers
    def _encode_batch(self, text: str | Sequence[str], name: str) -> tuple[list[torch.Tensor], bool]:
        single = isinstance(text, str)
        if not single and not (isinstance(text, Sequence) and all(isinstance(t, str) for t in text)):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        texts = [text] if single else list(text)
        if not texts:
            raise InvalidInputError(f"{name} is an empty list; give a str or a non-empty list of str")
        return [self.space.encode(t, name=name) for t in texts], single

    def _with_bos(self, ids: torch.Tensor) -> torch.Tensor:
        bos = torch.full((*ids.shape[:-1], 1), self.space.bos, dtype=torch.long, device=ids.device)
        return torch.cat([bos, ids], dim=-1)

    def per_token_log_prob(self, seq: torch.Tensor) -> torch.Tensor:
        """``log p(seq[:, t+1] | window)`` for ``seq [N, L+1]`` starting with BOS: ``[N, L]`` float32 nats (differentiable)."""
        n, length = seq.shape[0], seq.shape[1] - 1
        out = torch.empty(n, length, device=seq.device)
        j = 0
        while j < length:
            start = self.window_start(j)
            end = min(length, start + (self.context or length))  # predictions for input positions [j, end)
            logits = self(seq[:, start:end]).float().log_softmax(-1)[:, j - start :]
            out[:, j:end] = logits.gather(-1, seq[:, j + 1 : end + 1, None])[..., 0]
            j = end
        return out

    # ---- contract
    def dims(self, x: Any) -> torch.Tensor | int:
        if isinstance(x, str):
            return len(x)
        return torch.tensor([len(t) for t in x], dtype=torch.float32)

    def example_batch(self, n: int) -> list[str]:
        g = torch.Generator().manual_seed(0)
        return [self.space.decode(torch.randint(0, self.space.size, (16,), generator=g)) for _ in range(n)]

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        seq = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(self.device)
        logits = self(seq[:, :-1]).float()
        nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten(), reduction="sum")
        return nats, seq[:, 1:].numel()

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        from .data import TextChunks, TextWindows

        ids = self.space.encode(raw, name="dataset text")
        length = getattr(self.config, "train_length", None) or self.context or 256
        return TextWindows(ids, length, bos=self.space.bos) if train else TextChunks(ids, length, bos=self.space.bos)

    @torch.inference_mode()
    def log_prob(self, x: str | Sequence[str], *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        """Nats per string ``[N]``; ``per_dim`` gives each character's ``[N, L]`` (NaN-padded when lengths differ)."""
        self.condition_ids(condition, 1)
        encoded, _ = self._encode_batch(x, "text")
        rows: list[torch.Tensor] = [torch.zeros(0)] * len(encoded)
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):  # strings of equal length share a batch
            by_length.setdefault(len(ids), []).append(i)
        for length, indices in by_length.items():
            if length:
                lp = self.per_token_log_prob(self._with_bos(torch.stack([encoded[i] for i in indices]).to(self.device))).cpu()
                for row, i in enumerate(indices):
                    rows[i] = lp[row]
        if per_dim:
            width = max(len(r) for r in rows)
            padded = torch.full((len(rows), width), float("nan"))
            for i, r in enumerate(rows):
                padded[i, : len(r)] = r.cpu()
            return padded
        return torch.stack([r.sum() for r in rows])

    def nats_per_char(self, text: str | Sequence[str]) -> torch.Tensor:
        return -self.log_prob(text) / self.dims(text)

    @torch.inference_mode()
    def sample(self, n: int, *, max_new_chars: int = 200, condition: Condition = None, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, stop: str | None = None,
               generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False) -> list[str]:
        """``n`` texts of up to ``max_new_chars`` characters, generated from the begin-of-text token."""
        self.condition_ids(condition, 1)
        if not isinstance(n, int) or n < 1:
            raise InvalidInputError(f"n must be a positive int, got {n!r}")
        return self._generate([""] * n, max_new_chars, temperature, top_k, top_p, stop, generator, progress, naive)

    @torch.inference_mode()
    def complete(self, prompt: str | Sequence[str], *, max_new_chars: int = 200, condition: Condition = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, stop: str | None = None,
                 generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False) -> str | list[str]:
        """Each prompt followed by its continuation (the prompt comes back unchanged)."""
        self.condition_ids(condition, 1)
        single = isinstance(prompt, str)
        prompts = [prompt] if single else list(prompt)
        self._encode_batch(prompts, "prompt")
        out = self._generate(prompts, max_new_chars, temperature, top_k, top_p, stop, generator, progress, naive)
        return out[0] if single else out

    def _generate(self, prompts: list[str], max_new: int, temperature: float, top_k: int | None, top_p: float | None,
                  stop: str | None, generator: torch.Generator | None, progress: bool | None, naive: bool) -> list[str]:
        _check_sampling(temperature, top_k, top_p)
        if not isinstance(max_new, int) or max_new < 0:
            raise InvalidInputError(f"max_new_chars must be a non-negative int, got {max_new!r}")
        if stop is not None and not isinstance(stop, str):
            raise InvalidInputError(f"stop must be a str or None, got {type(stop).__name__}")
        # Prompts of equal length share one batch; others run group by group, in order.
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(len(p), []).append(i)
        results: list[str] = [""] * len(prompts)
        with _progress(max_new * len(groups), progress, f"generating {self.family}") as bar:
            for indices in groups.values():
                seq = self._with_bos(torch.stack([self.space.encode(prompts[i], name="prompt") for i in indices]).to(self.device))
                new = self._extend(seq, max_new, temperature, top_k, top_p, stop, generator, naive, bar)
                for row, i in enumerate(indices):
                    results[i] = prompts[i] + new[row]
        return results

    def _extend(self, seq, max_new, temperature, top_k, top_p, stop, generator, naive, bar) -> list[str]:
        n = seq.shape[0]
        cache, cache_start = None, None
        done = torch.zeros(n, dtype=torch.bool)
        texts = [""] * n
        for _ in range(max_new):
            j = seq.shape[1] - 1
            start = self.window_start(j)
            if naive:
                logits = self(seq[:, start:])[:, -1]
            elif cache is None or start != cache_start:
                logits, cache = self.step(seq[:, start:], None)  # (re)fill the window
                logits, cache_start = logits[:, -1], start
            else:
                logits, cache = self.step(seq[:, j:], cache)
                logits = logits[:, -1]
            token = sample_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            seq = torch.cat([seq, token[:, None]], dim=1)
            for i, t in enumerate(token.tolist()):
                if not done[i]:
                    texts[i] += self.space.vocab[t]
                    done[i] = stop is not None and texts[i].endswith(stop)
            bar.update(1)
            if bool(done.all()):
                break
        return texts


class AudioModel(AutoregressiveModel):
    """Waveform models over integer sample codes. A family implements ``forward``, ``per_step_log_prob`` and ``draw``.

    A clip of T samples is scored from a begin-of-clip input (code ``levels``): the input at
    position t is sample t-1, so ``log p(x_t | x_<t)`` for every t, the first included. Batches for
    training and evaluation are ``[N, 2, W]`` code rows (inputs; targets with -1 where not scored),
    built by ``prepare_dataset``; so cropped training windows and whole test clips share one loss.
    Sampling draws all its uniforms from the generator up front, so the naive path and a family's
    cached path (``generation_state``/``next_params``) consume randomness identically.
    """

    modality: ClassVar[str] = "audio"
    eval_chunk: ClassVar[int] = 1 << 17  # samples per forward when scoring without gradients (bounds memory)

    @property
    def space(self) -> AudioSpace:
        c = self.config
        return AudioSpace(c.sample_rate, c.levels, "mu-law" if getattr(c, "output", "mu-law") == "mu-law" else "linear")

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def bos(self) -> int:
        return self.space.levels

    @property
    def receptive_field(self) -> int:
        """How many past samples a prediction can depend on."""
        raise NotImplementedError

    # ---- hooks a family implements
    def forward(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Output parameters ``[N, W, P]`` for input codes ``[N, W]`` (values 0..levels, ``levels`` = begin of clip)."""
        raise NotImplementedError

    def per_step_log_prob(self, inputs: torch.Tensor, targets: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(target_t | inputs_<=t)`` in float32 nats ``[N, W]``, differentiable; targets < 0 give 0."""
        raise NotImplementedError

    def draw(self, params: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
        """Codes ``[N]`` drawn from output parameters ``[N, P]`` by inverse CDF with ``uniforms [N, 2]``."""
        raise NotImplementedError

    def generation_state(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None) -> Any:
        """Caches carried from sample to sample, already fed ``codes[:, :first]``; the default keeps none."""
        return None

    def next_params(self, codes: torch.Tensor, t: int, cond: torch.Tensor | None, state: Any) -> torch.Tensor:
        """Output parameters ``[N, P]`` for sample ``t`` given ``codes[:, :t]``.

        With ``state`` None this is the naive path: one forward over the receptive field (exact,
        since nothing older can reach position t), the reference the cached path is tested against.
        """
        start = max(0, t - self.receptive_field + 1)
        inputs = codes[:, max(0, start - 1) : t]
        if start == 0:
            inputs = torch.cat([torch.full_like(codes[:, :1], self.bos), inputs], dim=1)
        return self(inputs, cond)[:, -1]

    # ---- helpers
    def _waveforms(self, x: Any, name: str, sample_rate: int | None, resample: bool) -> tuple[list[torch.Tensor], bool]:
        """Validated clips (a list of ``[T]`` tensors) and whether the input was a list of clips of any lengths."""
        if isinstance(x, (list, tuple)):
            if not x:
                raise InvalidInputError(f"{name} is an empty list; give a waveform [N, T] or a list of [T] waveforms")
            return [self._single(w, f"{name}[{i}]", sample_rate, resample) for i, w in enumerate(x)], True
        return list(self.space.validate(x, name=name, sample_rate=sample_rate, resample=resample)), False

    def _single(self, w: Any, name: str, sample_rate: int | None, resample: bool) -> torch.Tensor:
        wave = self.space.validate(w, name=name, sample_rate=sample_rate, resample=resample)
        if wave.shape[0] != 1:
            raise InvalidInputError(f"{name} holds {wave.shape[0]} clips; a list entry must be one mono waveform [T]")
        return wave[0]

    def _rows(self, clips: list[torch.Tensor]) -> torch.Tensor:
        from .data import AudioClip, AudioCodes, pack_windows

        codes = AudioCodes([AudioClip(c, self.sample_rate, "", None) for c in clips], self.space)  # type: ignore[arg-type]
        return pack_windows(codes, [(i, 0, len(c)) for i, c in enumerate(clips)], 0, self.bos)

    def _scores(self, rows: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Per-sample log-probabilities ``[N, W]`` of packed rows, in chunks of at most ``eval_chunk`` samples when not training."""
        rows = rows.to(self.device)
        if torch.is_grad_enabled():
            return self.per_step_log_prob(rows[:, 0], rows[:, 1], cond)
        out = torch.zeros(rows.shape[0], rows.shape[2], device=self.device)
        per = max(1, self.eval_chunk // max(1, rows.shape[2]))
        for lo in range(0, rows.shape[0], per):
            part = rows[lo : lo + per]
            width = int((part[:, 1] >= 0).nonzero()[:, 1].max()) + 1 if bool((part[:, 1] >= 0).any()) else 1
            c = None if cond is None else cond[lo : lo + per]
            out[lo : lo + per, :width] = self.per_step_log_prob(part[:, 0, :width], part[:, 1, :width], c).float()
        return out

    # ---- contract
    def dims(self, x: Any) -> int | torch.Tensor:
        """Samples per clip: an int for a tensor batch, a float tensor for a list of clips."""
        if isinstance(x, (list, tuple)):
            return torch.tensor([float(torch.as_tensor(w).shape[-1]) for w in x])
        return int(torch.as_tensor(x).shape[-1])

    def bits_per_sample(self, x: Any, *, condition: Condition = None, sample_rate: int | None = None, resample: bool = False) -> torch.Tensor:
        """Negative log-likelihood in bits per sample, ``[N]``."""
        return -self.log_prob(x, condition=condition, sample_rate=sample_rate, resample=resample) / (self.dims(x) * math.log(2))

    def example_batch(self, n: int) -> torch.Tensor:
        """``n`` random valid waveforms of 50 ms: a cheap input for smoke tests and publish-time validation."""
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, max(2, self.sample_rate // 20), generator=g) * 1.8 - 0.9

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        rows, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
        cond = None if self.num_conditions == 0 or cond is None else cond.to(self.device).long()
        lp = self._scores(rows, cond)
        return -lp.sum(), int((rows[:, 1] >= 0).sum())

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        """Clips (``AudioClip``s in memory or ``AudioFile``s on disk) as random training windows or whole test clips."""
        from .data import AudioClipSet, AudioCodes, AudioWindows
        from .errors import DatasetError

        speakers = None
        if self.num_conditions:
            unknown = sorted({c.speaker for c in raw} - set(self.labels))
            if unknown:
                raise DatasetError(f"the dataset has speaker(s) {unknown} that this model does not know; its labels are {self.labels}")
            speakers = torch.tensor([self.labels.index(c.speaker) for c in raw])
        codes = AudioCodes(list(raw), self.space)
        if not train:
            return AudioClipSet(codes, speakers, self.bos)
        length = getattr(self.config, "train_samples", None) or 4000
        return AudioWindows(codes, speakers, length, self.receptive_field - 1, self.bos)

    @torch.inference_mode()
    def log_prob(self, x: Any, *, condition: Condition = None, per_dim: bool = False, sample_rate: int | None = None,
                 resample: bool = False) -> torch.Tensor:
        """Nats per clip ``[N]`` (``per_dim``: each sample's ``[N, T]``, NaN-padded for a list of clips of different lengths).

        ``x`` is a waveform ``[N, T]``/``[T]`` or a list of ``[T]`` waveforms; ``sample_rate`` says its rate
        (default: the model's); a different rate needs ``resample=True``.
        """
        clips, _ = self._waveforms(x, "waveform", sample_rate, resample)
        cond = self.condition_ids(condition, len(clips))
        rows = self._rows(clips)
        lp = self._scores(rows, cond).cpu()
        if per_dim:
            return lp.masked_fill(rows[:, 1] < 0, float("nan"))
        return lp.sum(1)

    @torch.inference_mode()
    def sample(self, n: int, *, seconds: float = 1.0, samples: int | None = None, condition: Condition = None,
               temperature: float = 1.0, generator: torch.Generator | None = None, progress: bool | None = None,
               naive: bool = False) -> torch.Tensor:
        """Draw ``n`` clips of ``seconds`` (or exactly ``samples``) as float32 ``[n, T]`` in [-1, 1]."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidInputError(f"n must be a positive int, got {n!r}")
        length = self._length(seconds, samples)
        codes = torch.zeros(n, length, dtype=torch.long, device=self.device)
        self._fill(codes, 0, condition, temperature, generator, progress, naive)
        return self.space.decode(codes).cpu()

    @torch.inference_mode()
    def complete(self, prefix: Any, *, seconds: float = 1.0, samples: int | None = None, condition: Condition = None,
                 temperature: float = 1.0, generator: torch.Generator | None = None, progress: bool | None = None,
                 naive: bool = False, sample_rate: int | None = None, resample: bool = False) -> torch.Tensor:
        """Each prefix ``[N, T]`` followed by ``seconds`` more: ``[N, T + new]``, the prefix returned unchanged."""
        wave = self.space.validate(prefix, name="prefix", sample_rate=sample_rate, resample=resample)
        new = self._length(seconds, samples, allow_zero=True)
        codes = torch.zeros(wave.shape[0], wave.shape[1] + new, dtype=torch.long, device=self.device)
        codes[:, : wave.shape[1]] = self.space.encode(wave).to(self.device)
        self._fill(codes, wave.shape[1], condition, temperature, generator, progress, naive)
        return torch.cat([wave, self.space.decode(codes[:, wave.shape[1] :]).cpu()], dim=1)

    def _length(self, seconds: float, samples: int | None, allow_zero: bool = False) -> int:
        if samples is not None:
            if not isinstance(samples, int) or samples < (0 if allow_zero else 1):
                raise InvalidInputError(f"samples must be a {'non-negative' if allow_zero else 'positive'} int, got {samples!r}")
            return samples
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
            raise InvalidInputError(f"seconds must be a {'non-negative' if allow_zero else 'positive'} number, got {seconds!r}")
        return round(seconds * self.sample_rate)

    def _fill(self, codes: torch.Tensor, first: int, condition: Condition, temperature: float,
              generator: torch.Generator | None, progress: bool | None, naive: bool) -> None:
        _check_sampling(temperature, None, None)
        cond = self.condition_ids(condition, codes.shape[0])
        total = codes.shape[1]
        uniforms = torch.rand(max(0, total - first), codes.shape[0], 2, generator=generator, device=codes.device)
        state = None if naive else self.generation_state(codes, first, cond)
        with _progress(total - first, progress, f"sampling {self.family}", unit="sample") as bar:
            self.sample_codes(codes, first, cond, float(temperature), uniforms, state, bar)

    def sample_codes(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None, temperature: float,
                     uniforms: torch.Tensor, state: Any, bar: Any) -> None:
        """Draw ``codes[:, first:]`` in place, sample t with ``uniforms[t - first]``: one ``next_params`` per sample.

        A family may override it to run its cached loop without per-sample Python calls.
        """
        for t in range(first, codes.shape[1]):
            codes[:, t] = self.draw(self.next_params(codes, t, cond, state), uniforms[t - first], temperature)
            bar.update(1)
