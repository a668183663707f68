"""Text: the character vocabulary, the language-model base (context window, KV cache driver), training windows."""

from __future__ import annotations

import functools
import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .contract import AutoregressiveModel, Cache, Condition, check_count, check_sampling
from .decoding import Layers
from .distributions import Categorical
from .errors import ConfigError, InvalidInputError
from .windows import TextChunks, TextWindows

__all__ = ["CharSpace", "KVCache", "StepCache", "TextCache", "TextModel", "causal_attention", "read_text"]


@dataclass(frozen=True)
class CharSpace:
    """Text as characters of a fixed vocabulary; with ``with_bos``, token ``len(vocab)`` is the begin-of-text marker.

    A text space has ``encode``, ``decode``, ``size`` (logits per step), ``bos`` (prepended for scoring
    and generation, or None: the first token is context only) and ``start`` (the token unconditional
    generation starts from when there is no bos; None: generation needs a prompt).
    """

    vocab: str
    with_bos: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.vocab, str) or not self.vocab or len(set(self.vocab)) != len(self.vocab):
            repeated = sorted({c for c in self.vocab if self.vocab.count(c) > 1}) if isinstance(self.vocab, str) else []
            raise ConfigError(f"a character vocabulary must be a non-empty str of distinct characters; repeated: {''.join(repeated)!r}")

    @property
    def size(self) -> int:
        return len(self.vocab)

    @property
    def bos(self) -> int | None:
        return len(self.vocab) if self.with_bos else None

    @property
    def start(self) -> int | None:
        return self.bos

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.vocab)}

    def encode(self, text: str, *, name: str = "text") -> torch.Tensor:
        """Token ids ``LongTensor[len(text)]``; characters outside the vocabulary are an error that lists them."""
        if not isinstance(text, str):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        index = self._index
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise InvalidInputError(
                f"{name} has characters outside this model's vocabulary: {''.join(unknown)!r} ({len(unknown)} distinct); "
                f"accepted: {self.vocab!r}"
            )
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.vocab[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids) if i < len(self.vocab))

    @classmethod
    def from_text(cls, text: str) -> CharSpace:
        return cls("".join(sorted(set(text))))


class TextCache(Cache):
    """Generation over a token buffer ``[N, L]``: step ``t`` predicts token ``t`` from the window before it.

    This base is the naive path: a full forward over the window at every step. It also tracks the
    ``stop`` string of each row.
    """

    def __init__(self, model: TextModel, tokens: torch.Tensor, first: int, stop: str | None) -> None:
        self.model, self.tokens, self.first, self.stop = model, tokens, first, stop
        self.done = [False] * tokens.shape[0]

    def params_at(self, t: int) -> torch.Tensor:
        return self.model(self.tokens[:, self.model.window_start(t - 1) : t])[:, -1]

    def update(self, t: int, value: torch.Tensor) -> None:
        self.tokens[:, t] = value
        if self.stop is not None:
            for i, done in enumerate(self.done):
                if not done and self.stop in self.model.space.decode(self.tokens[i, self.first : t + 1]):
                    self.done[i] = True

    def finished(self) -> bool:
        return all(self.done)


class StepCache(TextCache):
    """The fast path: the family's ``step`` continues its cache (KV pairs, LSTM state) by one token, refilling it when the window jumps."""

    def __init__(self, model: TextModel, tokens: torch.Tensor, first: int, stop: str | None) -> None:
        super().__init__(model, tokens, first, stop)
        self.state: Any = None
        self.window = -1

    def params_at(self, t: int) -> torch.Tensor:
        start = self.model.window_start(t - 1)
        if self.state is None or start != self.window:
            logits, self.state = self.model.step(self.tokens[:, start:t], None)
            self.window = start
        else:
            logits, self.state = self.model.step(self.tokens[:, t - 1 : t], self.state)
        return logits[:, -1]


class KVCache:
    """Keys and values of every layer of a Transformer, ``[layers, N, heads, positions, head_dim]``, allocated once for the
    whole context and filled in place: a step writes its slot, nothing is concatenated."""

    def __init__(self, layers: int, n: int, heads: int, positions: int, head_dim: int, like: torch.Tensor) -> None:
        shape = (layers, n, heads, positions, head_dim)
        self.k = torch.empty(shape, dtype=like.dtype, device=like.device)
        self.v = torch.empty(shape, dtype=like.dtype, device=like.device)
        self.length = 0  # positions filled; the model advances it after its last layer
        self.head: torch.Tensor | None = None  # a family's output layer in the layout its steps read fastest (GPT-2)
        self.layers: Layers | None = None  # the blocks' parameters for zoo.decoding.decode_token, gathered per generation window


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache | None, layer: int,
                     dropout: float = 0.0) -> torch.Tensor:
    """Attention of ``t`` new positions ``[N, heads, t, d]`` over the cached ones and themselves, causally.

    With a cache, this layer's new keys and values are written after the ``cache.length`` cached
    ones first. One new token sees everything; a window from scratch is causal; several new
    tokens after a prefix get the explicit mask.
    """
    t = q.shape[2]
    past = 0
    if cache is not None:
        past = cache.length
        cache.k[layer, :, :, past : past + t] = k
        cache.v[layer, :, :, past : past + t] = v
        k, v = cache.k[layer, :, :, : past + t], cache.v[layer, :, :, : past + t]
    if past == 0 or t == 1:
        return F.scaled_dot_product_attention(q, k, v, is_causal=past == 0 and t > 1, dropout_p=dropout)
    mask = torch.ones(t, past + t, dtype=torch.bool, device=q.device).tril(past)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class TextModel(AutoregressiveModel):
    """Language models over a text space (characters, byte-level BPE). A family implements ``forward`` and ``step``.

    A text is scored from a begin-of-text token (BOS) where the space has one; otherwise its first
    token is context only (not scored: NaN in ``per_dim``). A model with a finite ``context`` C sees
    a window of at most C tokens: once full, the window jumps forward by ``slide`` tokens (S), so
    the prediction at input position j uses tokens ``[start(j), j]`` with ``start(j) = 0`` for j < C
    and ``((j - C) // S + 1) * S`` after. Scoring, naive sampling and cached sampling all use this
    one rule, which is why they agree exactly and why long texts score at one forward per S tokens.
    """

    modality: ClassVar[str] = "text"

    def __init__(self, config: Any, *, space: Any, context: int | None, slide: int | None = None,
                 train_length: int | None = None) -> None:
        super().__init__(config, distribution=Categorical(space.size))
        self.space = space
        self.context = context
        self.slide = slide or max(1, (context or 4) // 4)
        self.train_length = train_length or context or 256

    def window_start(self, j: int) -> int:
        c = self.context
        return 0 if c is None or j < c else ((j - c) // self.slide + 1) * self.slide

    # ---- hooks a family implements
    @abstractmethod
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, T, V]`` over the vocabulary (never BOS) for token ids ``[N, T]`` (T <= context)."""

    @abstractmethod
    def step(self, ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Continue from ``cache`` (None: empty) with ``ids [N, k]``; returns logits ``[N, k, V]`` and the new cache."""

    # ---- helpers
    def _encode_batch(self, text: str | Sequence[str], name: str) -> list[torch.Tensor]:
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        if not texts:
            raise InvalidInputError(f"{name} is an empty list; give a str or a non-empty list of str")
        return [self.space.encode(t, name=name) for t in texts]

    def _with_prefix(self, ids: torch.Tensor, generating: bool = False) -> torch.Tensor:
        """``ids [N, L]`` behind the begin-of-text token (or, with no BOS, the start token when generating from nothing)."""
        first = self.space.bos if self.space.bos is not None else self.space.start if generating and ids.shape[1] == 0 else None
        if first is None:
            if generating and ids.shape[1] == 0:
                raise InvalidInputError("this model has no begin-of-text token: give a non-empty prompt")
            return ids
        return torch.cat([torch.full((ids.shape[0], 1), first, dtype=torch.long, device=ids.device), ids], dim=1)

    def per_token_log_prob(self, seq: torch.Tensor) -> torch.Tensor:
        """``log p(seq[:, t+1] | window)`` for ``seq [N, L+1]``: ``[N, L]`` float32 nats (differentiable)."""
        n, length = seq.shape[0], seq.shape[1] - 1
        out = torch.empty(n, length, device=seq.device)
        j = 0
        while j < length:
            start = self.window_start(j)
            end = min(length, start + (self.context or length))  # predictions for input positions [j, end)
            logits = self(seq[:, start:end])[:, j - start :]
            out[:, j:end] = self.distribution.log_prob(logits.transpose(1, 2), seq[:, None, j + 1 : end + 1])[:, 0]
            j = end
        return out

    def _scored_text(self, text: str) -> str:
        """The part of ``text`` whose tokens are scored (all of it behind a BOS; after the first token otherwise)."""
        if self.space.bos is not None or not text:
            return text
        return text[len(self.space.decode(self.space.encode(text)[:1])) :]

    # ---- contract
    def dims(self, x: str | Sequence[str]) -> torch.Tensor | int:
        """Scored tokens per text."""
        drop = 0 if self.space.bos is not None else 1
        if isinstance(x, str):
            return max(0, len(self.space.encode(x)) - drop)
        return torch.tensor([max(0, len(self.space.encode(t)) - drop) for t in x], dtype=torch.float32)

    def example_batch(self, n: int) -> list[str]:
        g = torch.Generator().manual_seed(0)
        return [self.space.decode(torch.randint(0, self.space.size, (16,), generator=g)) for _ in range(n)]

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        seq = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(self.device)
        nats = -self.distribution.log_prob(self(seq[:, :-1]).transpose(1, 2), seq[:, None, 1:]).sum()
        return nats, seq[:, 1:].numel()

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        ids = self.space.encode(raw, name="dataset text")
        windows = TextWindows if train else TextChunks
        return windows(ids, self.train_length, bos=self.space.bos)

    @torch.inference_mode()
    def log_prob(self, x: str | Sequence[str], *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        """Nats per text ``[N]``; ``per_dim`` gives each token's ``[N, L]`` (NaN-padded; NaN for an unscored first token)."""
        self.condition_ids(condition, 1)
        encoded = self._encode_batch(x, "text")
        drop = 0 if self.space.bos is not None else 1
        rows: list[torch.Tensor] = [torch.full((len(ids),), float("nan")) for ids in encoded]
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):  # texts of equal length share a batch
            by_length.setdefault(len(ids), []).append(i)
        for length, indices in by_length.items():
            if length > drop:
                lp = self.per_token_log_prob(self._with_prefix(torch.stack([encoded[i] for i in indices]).to(self.device))).cpu()
                for row, i in enumerate(indices):
                    rows[i][drop:] = lp[row]
        if per_dim:
            padded = torch.full((len(rows), max(len(r) for r in rows)), float("nan"))
            for i, r in enumerate(rows):
                padded[i, : len(r)] = r
            return padded
        return torch.stack([r[drop:].sum() for r in rows])

    def nats_per_char(self, text: str | Sequence[str]) -> torch.Tensor:
        """Negative log-likelihood per scored character, ``[N]`` (one row for a single str, like ``log_prob``)."""
        texts = [text] if isinstance(text, str) else list(text)
        chars = torch.tensor([max(1, len(self._scored_text(t))) for t in texts], dtype=torch.float32)
        return -self.log_prob(texts) / chars

    def bits_per_byte(self, text: str | Sequence[str]) -> torch.Tensor:
        """Negative log-likelihood in bits per scored UTF-8 byte: comparable across character and subword models."""
        texts = [text] if isinstance(text, str) else list(text)
        size = torch.tensor([max(1, len(self._scored_text(t).encode("utf-8"))) for t in texts], dtype=torch.float32)
        return -self.log_prob(texts) / (size * math.log(2))

    @torch.inference_mode()
    def sample(self, n: int, *, max_new_chars: int = 200, condition: Condition = None, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, stop: str | None = None,
               generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False) -> list[str]:
        """``n`` texts of up to ``max_new_chars`` tokens (characters for a character model), generated from the start token."""
        self.condition_ids(condition, 1)
        n = check_count(n, "n")
        return self._generate([""] * n, max_new_chars, temperature, top_k, top_p, stop, generator, progress, naive)

    @torch.inference_mode()
    def complete(self, prompt: str | Sequence[str], *, max_new_chars: int = 200, condition: Condition = None,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None, stop: str | None = None,
                 generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False) -> str | list[str]:
        """Each prompt followed by its continuation (the prompt comes back unchanged)."""
        self.condition_ids(condition, 1)
        self._encode_batch(prompt, "prompt")
        out = self._generate([prompt] if isinstance(prompt, str) else list(prompt), max_new_chars, temperature, top_k, top_p, stop,
                             generator, progress, naive)
        return out[0] if isinstance(prompt, str) else out

    def _generate(self, prompts: list[str], max_new: int, temperature: float, top_k: int | None, top_p: float | None,
                  stop: str | None, generator: torch.Generator | None, progress: bool | None, naive: bool) -> list[str]:
        temperature = check_sampling(temperature, top_k, top_p)
        max_new = check_count(max_new, "max_new_chars", minimum=0)
        if stop is not None and (not isinstance(stop, str) or not stop):
            raise InvalidInputError(f"stop must be a non-empty str or None, got {stop!r}")
        encoded = [self.space.encode(p, name="prompt") for p in prompts]
        self.check_generation_size(len(prompts), max(len(e) for e in encoded) + max_new + 1, 16)
        groups: dict[int, list[int]] = {}  # prompts of equal length share one batch; others run group by group, in order
        for i, ids in enumerate(encoded):
            groups.setdefault(len(ids), []).append(i)
        results = list(prompts)
        options = {"top_k": top_k, "top_p": top_p}
        for indices in groups.values():
            known = self._with_prefix(torch.stack([encoded[i] for i in indices]).to(self.device), generating=True)
            first = known.shape[1]
            tokens = torch.cat([known, known.new_zeros(len(indices), max_new)], dim=1)
            cache = (TextCache if naive else StepCache)(self, tokens, first, stop)
            self.run_generation(cache, first, first + max_new, len(indices), temperature, generator, progress, "token", options)
            for row, i in enumerate(indices):
                new = self.space.decode(tokens[row, first:])
                if stop is not None and stop in new:
                    new = new[: new.index(stop) + len(stop)]
                results[i] = prompts[i] + new
        return results


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read UTF-8 text ({exc})") from None
