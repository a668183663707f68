"""Character-level Transformer language model (nanoGPT-style; Radford et al. 2019 block layout).

Pre-LayerNorm blocks with causal self-attention through ``scaled_dot_product_attention``, a GELU
MLP, learned absolute positions and input/output embeddings tied. Generation keeps a per-layer
key/value cache; the window rule of :class:`zoo.text.TextModel` decides when it is refilled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..decoding import block_weights, decode_token, takes_decode_token
from ..errors import ConfigError, InvalidInputError
from ..registry import register_family
from ..text import CharSpace, KVCache, TextModel, causal_attention
from ..validation import check_positive, check_range

__all__ = ["SHAKESPEARE_VOCAB", "CharTransformer", "CharTransformerConfig"]

SHAKESPEARE_VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class CharTransformerConfig:
    vocab: str = SHAKESPEARE_VOCAB
    context: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False
    slide: int | None = None  # tokens the window jumps once full (default context // 4)
    bos: bool = True  # a begin-of-text token (False: converted nanoGPT models, scored from their first character)

    def __post_init__(self) -> None:
        CharSpace(self.vocab)  # distinct characters
        check_positive(self, "context", "n_layer", "n_head", "n_embd")
        check_range(self, "dropout", 0.0, 1.0)
        if self.n_embd % self.n_head:
            raise ConfigError(f"CharTransformerConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.slide is not None and (isinstance(self.slide, bool) or not isinstance(self.slide, int) or not 0 < self.slide < self.context):
            raise ConfigError(f"CharTransformerConfig.slide must be None or an int in 1..context-1, got {self.slide!r}")


class SelfAttention(nn.Module):
    def __init__(self, c: CharTransformerConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        n, t, width = x.shape
        q, k, v = (z.view(n, t, self.n_head, width // self.n_head).transpose(1, 2) for z in self.qkv(x).split(width, dim=2))
        y = causal_attention(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(n, t, width)))


class Block(nn.Module):
    def __init__(self, c: CharTransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = SelfAttention(c)
        self.ln2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias), nn.GELU(),
                                 nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


@register_family(
    "char-transformer",
    config=CharTransformerConfig,
    presets={
        "tiny": dict(vocab="abc \n", context=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0),
        # nanoGPT's config/train_shakespeare_char.py
        "shakespeare-char": dict(context=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
    },
)
class CharTransformer(TextModel):
    def __init__(self, config: CharTransformerConfig) -> None:
        c = config
        super().__init__(config, space=CharSpace(c.vocab, with_bos=c.bos), context=c.context, slide=c.slide)
        self.vocab_size = len(c.vocab)
        self.wte = nn.Embedding(self.vocab_size + int(c.bos), c.n_embd)  # + begin-of-text
        self.wpe = nn.Embedding(c.context, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _run(self, ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        past = 0 if cache is None else cache.length
        if past + ids.shape[1] > self.config.context:
            raise InvalidInputError(f"window of {past + ids.shape[1]} tokens exceeds the context of {self.config.context}")
        pos = torch.arange(past, past + ids.shape[1], device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos))
        if takes_decode_token(self, ids, cache):
            x = decode_token(x[:, 0], cache.k, cache.v, past, cache.layers, self.config.n_head, self.ln_f.eps, "none")[:, None]
        else:
            for i, block in enumerate(self.blocks):
                x = block(x, cache, i)
        if cache is not None:
            cache.length += ids.shape[1]
        return self.ln_f(x) @ self.wte.weight[: self.vocab_size].T  # tied output embedding; BOS is never predicted

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self._run(ids, None)

    def step(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        if cache is None:
            c = self.config
            cache = KVCache(c.n_layer, ids.shape[0], c.n_head, c.context, c.n_embd // c.n_head, self.wte.weight)
            cache.layers = [block_weights(b.ln1, b.attn.qkv, b.attn.proj, b.ln2, b.mlp[0], b.mlp[2]) for b in self.blocks]
        return self._run(ids, cache), cache
