"""Byte-level BPE text (GPT-2's tokenizer) through the ``tokenizers`` library: any text round-trips exactly.

A :class:`BPESpace` wraps a ``tokenizers.Tokenizer`` read from a checkpoint's ``tokenizer.json``
(or ``vocab.json`` + ``merges.txt``). It follows the text-space interface of :mod:`zoo.text`:
``encode``, ``decode``, ``size``, ``bos`` (None: GPT-2 has no begin-of-text token, a text's first
token is context only) and ``start`` (``<|endoftext|>``, the token unconditional generation starts
from). Special tokens decode to their literal text (``"<|endoftext|>"``) and encode back to their
id, so ``encode(decode(ids))`` gives the same ids for every canonical tokenization.

Byte-level BPE can emit half of a multi-byte character; such bytes decode to U+FFFD, as
transformers' ``decode`` does.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .errors import CheckpointError, ConfigError, InvalidInputError

__all__ = ["ENDOFTEXT", "BPESpace", "byte_to_unicode"]

ENDOFTEXT = "<|endoftext|>"
TOKENIZER_FILE = "tokenizer.json"


@functools.cache
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _byte_level(model: models.BPE) -> Tokenizer:
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


class BPESpace:
    """Text as byte-level BPE tokens; ``size`` logits (the model's vocabulary, at least the tokenizer's)."""

    bos: int | None = None

    def __init__(self, tokenizer: Tokenizer, *, size: int | None = None, start: int | None = None) -> None:
        self.tokenizer = tokenizer
        have = tokenizer.get_vocab_size(with_added_tokens=True)
        self.size = have if size is None else size
        if self.size < have:
            raise ConfigError(f"the tokenizer has {have} tokens, more than the model's {self.size} logits")
        self.start = tokenizer.token_to_id(ENDOFTEXT) if start is None else start
        if self.start is not None and not 0 <= self.start < self.size:
            raise ConfigError(f"start token {self.start} is outside the vocabulary of {self.size}")

    # ---- construction
    @classmethod
    def from_folder(cls, folder: str | Path, *, size: int | None = None, start: int | None = None) -> BPESpace:
        """The tokenizer of a checkpoint folder: ``tokenizer.json``, else ``vocab.json`` + ``merges.txt``."""
        folder = Path(folder)
        try:
            if (folder / TOKENIZER_FILE).is_file():
                tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
                tok = _byte_level(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
                if tok.token_to_id(ENDOFTEXT) is not None:
                    tok.add_special_tokens([ENDOFTEXT])
            else:
                raise CheckpointError(f"{folder} has no tokenizer: it needs {TOKENIZER_FILE}, or vocab.json and merges.txt")
        except Exception as exc:  # tokenizers raises plain Exceptions for unreadable files
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{folder}: cannot read the tokenizer ({exc})") from None
        return cls(tok, size=size, start=start)

    @classmethod
    def ascii(cls, size: int = 129) -> BPESpace:
        """The space of a model built without a tokenizer: the 128 ASCII bytes as tokens 0..127 and ``<|endoftext|>`` last.

        No merges, so every id sequence decodes and encodes back to itself; ids 128..size-2 are
        unused (they decode to nothing). A checkpoint brings its own tokenizer instead.
        """
        if size < 129:
            raise ConfigError(f"a GPT-2 model without a tokenizer needs vocab_size >= 129 (128 ASCII bytes + {ENDOFTEXT}), got {size}")
        stand_in = byte_to_unicode()
        vocab = {stand_in[b]: b for b in range(128)}
        vocab[ENDOFTEXT] = size - 1
        tok = _byte_level(models.BPE(vocab=vocab, merges=[]))
        tok.add_special_tokens([ENDOFTEXT])
        return cls(tok, size=size, start=size - 1)

    def save(self, folder: str | Path) -> None:
        """Write ``tokenizer.json`` into ``folder`` (what :meth:`from_folder` reads back)."""
        self.tokenizer.save(str(Path(folder) / TOKENIZER_FILE))

    # ---- the text-space interface
    def encode(self, text: str, *, name: str = "text") -> torch.Tensor:
        """Token ids ``LongTensor[L]``; text the tokenizer cannot represent exactly is an error naming the characters."""
        if not isinstance(text, str):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        except Exception as exc:  # e.g. lone surrogates, which are not Unicode text
            raise InvalidInputError(f"{name} cannot be tokenized: {exc}") from None
        if self.decode(ids) != text:
            lost = sorted({c for c in text if self.decode(self.tokenizer.encode(c, add_special_tokens=False).ids) != c})
            raise InvalidInputError(f"{name} has characters this model's tokenizer cannot represent: {''.join(lost)!r}")
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(values, skip_special_tokens=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPESpace) and (self.size, self.start) == (other.size, other.start) and self._json == other._json

    __hash__ = None  # type: ignore[assignment]

    @functools.cached_property
    def _json(self) -> str:
        return json.dumps(json.loads(self.tokenizer.to_str()), sort_keys=True)

    def __repr__(self) -> str:
        return f"BPESpace(size={self.size}, start={self.start})"
