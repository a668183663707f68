"""One generated token through a pre-LayerNorm Transformer, as plain tensor ops under TorchScript.

At batch 1 a small Transformer's decoding step is bound by per-op overhead, not arithmetic: each
``nn.Module`` call and each op dispatched from Python costs microseconds while its matrix-vector
product takes about as long. The char Transformer and GPT-2 share one block layout (LayerNorm,
fused q/k/v projection, attention over the KV cache, output projection, LayerNorm, GELU MLP, both
residual), so one function runs a token through either, reading the modules' own parameters (no
copies) and writing the same :class:`zoo.text.KVCache` their ``forward`` with a cache writes. The
families use it for single-token steps at inference; windows of several tokens (prompts, refills)
and training take the modules, and the tests hold both to the same numbers.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Layers", "block_weights", "decode_token", "takes_decode_token"]

Layers = list[list[torch.Tensor]]  # per block: ln1 w, b, qkv w, b, proj w, b, ln2 w, b, fc w, b, out w, b


def block_weights(ln1: nn.LayerNorm, qkv: nn.Linear, proj: nn.Linear, ln2: nn.LayerNorm, fc: nn.Linear,
                  out: nn.Linear) -> list[torch.Tensor]:
    """One block's parameters in the order :func:`decode_token` reads them (zeros where a layer has no bias)."""
    return [t for m in (ln1, qkv, proj, ln2, fc, out)
            for t in (m.weight.detach(), m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.weight.shape[0]))]


def takes_decode_token(model: nn.Module, ids: torch.Tensor, cache: Any) -> bool:
    """Whether a family's step runs :func:`decode_token`: one new token, a cache holding the blocks' parameters, and
    inference (no dropout, no autograd: the function reads detached parameters)."""
    return (cache is not None and cache.layers is not None and ids.shape[1] == 1
            and not (model.training or torch.is_grad_enabled()))


def _decode_token(x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: int, layers: list[list[torch.Tensor]],
                  n_head: int, eps: float, approximate: str) -> torch.Tensor:
    """The residual stream ``x [N, E]`` of the token at position ``pos`` after every block; its keys and values are
    written into slot ``pos`` of ``keys`` / ``values`` ``[layers, N, heads, positions, head_dim]``."""
    n, width = x.shape[0], x.shape[1]
    head_dim = width // n_head
    for i, w in enumerate(layers):
        h = F.layer_norm(x, [width], w[0], w[1], eps)
        q, k, v = F.linear(h, w[2], w[3]).view(n, 3, n_head, head_dim).unbind(1)
        keys[i, :, :, pos] = k
        values[i, :, :, pos] = v
        y = F.scaled_dot_product_attention(q.unsqueeze(2), keys[i, :, :, : pos + 1], values[i, :, :, : pos + 1])
        x = x + F.linear(y.view(n, width), w[4], w[5])
        h = F.gelu(F.linear(F.layer_norm(x, [width], w[6], w[7], eps), w[8], w[9]), approximate=approximate)
        x = x + F.linear(h, w[10], w[11])
    return x


_SCRIPTED: list[Any] = []


def decode_token(x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: int, layers: Layers, n_head: int,
                 eps: float, approximate: str) -> torch.Tensor:
    """:func:`_decode_token` under TorchScript, compiled on first use (kept off ``import zoo``); plain Python where
    TorchScript is unavailable (same numbers, only slower)."""
    if not _SCRIPTED:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated": torch.compile's call overhead is the cost here
                _SCRIPTED.append(torch.jit.script(_decode_token))
        except Exception:  # pragma: no cover - e.g. no source access in a frozen application
            _SCRIPTED.append(_decode_token)
    return _SCRIPTED[0](x, keys, values, pos, layers, n_head, eps, approximate)
