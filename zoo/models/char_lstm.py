"""Character-level LSTM language model (karpathy/char-rnn): embedding, stacked LSTM with dropout, linear output.

Its state carries the whole past, so it has no context window: scoring is one pass over any
length, and generation carries ``(h, c)`` from step to step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..registry import register_family
from ..text import CharSpace, TextModel
from ..validation import check_positive, check_range
from .char_transformer import SHAKESPEARE_VOCAB

__all__ = ["CharLSTM", "CharLSTMConfig"]


@dataclass
class CharLSTMConfig:
    vocab: str = SHAKESPEARE_VOCAB
    n_embd: int = 128
    hidden: int = 128
    n_layer: int = 2
    dropout: float = 0.0
    train_length: int = 256  # characters per training window (truncated backpropagation through time)

    def __post_init__(self) -> None:
        CharSpace(self.vocab)  # distinct characters
        check_positive(self, "n_embd", "hidden", "n_layer", "train_length")
        check_range(self, "dropout", 0.0, 1.0)


@register_family(
    "char-lstm",
    config=CharLSTMConfig,
    presets={
        "tiny": dict(vocab="abc \n", n_embd=8, hidden=16, n_layer=2, train_length=8),
        "char-rnn": dict(n_embd=128, hidden=128, n_layer=2),  # char-rnn's default 2x128
    },
)
class CharLSTM(TextModel):
    def __init__(self, config: CharLSTMConfig) -> None:
        super().__init__(config, space=CharSpace(config.vocab), context=None, train_length=config.train_length)
        c = config
        self.vocab_size = len(c.vocab)
        self.embed = nn.Embedding(self.vocab_size + 1, c.n_embd)  # + begin-of-text
        self.lstm = nn.LSTM(c.n_embd, c.hidden, c.n_layer, batch_first=True, dropout=c.dropout if c.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, self.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.step(ids, None)[0]

    def step(self, ids: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None):
        # oneDNN's LSTM rebuilds its primitive on every call: ~25 ms a layer, 30x the whole step at
        # generation sizes. PyTorch's native kernel is used when no gradient is needed; the flag is
        # restored on the way out, so no process-wide setting outlives the call.
        previous = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = previous and torch.is_grad_enabled()
        try:
            out, state = self.lstm(self.embed(ids), cache)
        finally:
            torch.backends.mkldnn.enabled = previous
        return self.head(self.drop(out)), state
