"""Text: the character vocabulary, the language-model base (context window, KV cache driver), training windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from .contract import AutoregressiveModel, Condition, check_sampling, progress_bar, sample_logits
from .errors import DatasetError, InvalidInputError

__all__ = ["CharSpace", "TextChunks", "TextModel", "TextWindows", "read_text"]


@dataclass(frozen=True)
class CharSpace:
    """Text as characters of a fixed vocabulary. Token ``len(vocab)`` is the begin-of-text marker (BOS)."""

    vocab: str

    def __post_init__(self) -> None:
        if len(set(self.vocab)) != len(self.vocab) or not self.vocab:
            raise ValueError("a character vocabulary must be a non-empty string of distinct characters")

    @property
    def size(self) -> int:
        return len(self.vocab)

    @property
    def bos(self) -> int:
        return len(self.vocab)

    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.vocab)}

    def encode(self, text: str, *, name: str = "text") -> torch.Tensor:
        """Token ids ``LongTensor[len(text)]``; characters outside the vocabulary are an error that lists them."""
        if not isinstance(text, str):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        index = self._index()
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
        check_sampling(temperature, top_k, top_p)
        if not isinstance(max_new, int) or max_new < 0:
            raise InvalidInputError(f"max_new_chars must be a non-negative int, got {max_new!r}")
        if stop is not None and not isinstance(stop, str):
            raise InvalidInputError(f"stop must be a str or None, got {type(stop).__name__}")
        # Prompts of equal length share one batch; others run group by group, in order.
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(len(p), []).append(i)
        results: list[str] = [""] * len(prompts)
        with progress_bar(max_new * len(groups), progress, f"generating {self.family}") as bar:
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


class TextWindows(Dataset):
    """Every window of ``length + 1`` tokens of a token stream (training examples, nanoGPT style).

    Example ``i`` starts at token ``i``; one in ten starts with the begin-of-text token instead of
    its first character, so the model also learns to start a text, as scoring and sampling do.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int) -> None:
        if len(ids) <= length + 1:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one training window of {length + 1}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) - self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] + torch.arange(self.length + 1)]
        rows[idx % 10 == 0, 0] = self.bos
        return (rows,)


class TextChunks(Dataset):
    """Consecutive non-overlapping chunks of ``length`` tokens, each preceded by begin-of-text (evaluation).

    A last partial chunk (fewer than ``length`` tokens) is left out so every batch is rectangular.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int) -> None:
        if len(ids) < length:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one evaluation chunk of {length}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) // self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] * self.length + torch.arange(self.length)]
        return (torch.cat([torch.full((len(idx), 1), self.bos), rows], dim=1),)


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read UTF-8 text ({exc})") from None
