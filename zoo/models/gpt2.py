"""GPT-2 (Radford et al. 2019) read from checkpoints in transformers' format, with a preallocated KV cache.

The network is transformers' ``GPT2LMHeadModel`` restated: learned positions, pre-LayerNorm blocks
(fused q/k/v projection, tanh-approximated GELU MLP), a final LayerNorm and an output layer tied
to the token embedding. Module names follow transformers' (``wte``, ``h.{i}.attn.c_attn``, ...)
without its ``transformer.`` prefix; its ``Conv1D`` weights are stored ``[in, out]`` and are
transposed into ``nn.Linear``'s ``[out, in]`` on reading.

A transformers folder or Hub repo (``config.json`` with ``model_type: gpt2``, ``model.safetensors``
and ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``) loads with :func:`from_transformers_folder`;
pickle weights (``pytorch_model.bin``) are never read. GPT-2 has no begin-of-text token: a text's
first token is context only, and unconditional generation starts from ``<|endoftext|>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..bpe import TOKENIZER_FILE, BPESpace
from ..checkpoint import CONFIG_NAME, REFETCH, WEIGHTS_NAME, sha256_file
from ..decoding import block_weights, decode_token, takes_decode_token
from ..errors import CheckpointError, ConfigError, InvalidInputError
from ..registry import register_family
from ..text import KVCache, TextModel, causal_attention
from ..validation import check_choice, check_positive, check_range

__all__ = ["GPT2", "GPT2Config", "config_from_transformers", "from_transformers_folder", "is_transformers_config",
           "state_dict_from_transformers"]

MODEL_TYPE = "gpt2"
TOKENIZER_FILES = (TOKENIZER_FILE, "vocab.json", "merges.txt")
ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@dataclass
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024  # the context
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width (None: 4 * n_embd)
    activation: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    slide: int | None = None  # tokens the window jumps once full (default n_positions // 4)

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
        if self.n_inner is not None:
            check_positive(self, "n_inner")
        check_choice(self, "activation", ACTIVATIONS)
        check_range(self, "layer_norm_epsilon", 0.0, 1.0)
        if self.n_embd % self.n_head:
            raise ConfigError(f"GPT2Config.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.slide is not None and (isinstance(self.slide, bool) or not isinstance(self.slide, int)
                                       or not 0 < self.slide < self.n_positions):
            raise ConfigError(f"GPT2Config.slide must be None or an int in 1..n_positions-1, got {self.slide!r}")


class Attention(nn.Module):
    def __init__(self, c: GPT2Config) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        n, t, width = x.shape
        q, k, v = self.c_attn(x).view(n, t, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        y = causal_attention(q, k, v, cache, layer)
        return self.c_proj(y.transpose(1, 2).reshape(n, t, width))


class MLP(nn.Module):
    def __init__(self, c: GPT2Config) -> None:
        super().__init__()
        inner = c.n_inner or 4 * c.n_embd
        self.c_fc = nn.Linear(c.n_embd, inner)
        self.c_proj = nn.Linear(inner, c.n_embd)
        self.approximate = ACTIVATIONS[c.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate))


class Block(nn.Module):
    def __init__(self, c: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        self.attn = Attention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        self.mlp = MLP(c)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


@register_family(
    "gpt2",
    config=GPT2Config,
    presets={
        "tiny": dict(vocab_size=129, n_positions=16, n_embd=16, n_layer=2, n_head=2),  # the ASCII space of BPESpace.ascii
        "gpt2": dict(),  # openai-community/gpt2: 124M
        "distilgpt2": dict(n_layer=6),  # distilbert/distilgpt2: 82M
        "gpt2-medium": dict(n_embd=1024, n_layer=24, n_head=16),
    },
)
class GPT2(TextModel):
    """GPT-2 over a byte-level BPE space (:class:`zoo.bpe.BPESpace`); built without one it reads ASCII (:meth:`BPESpace.ascii`)."""

    extra_files = TOKENIZER_FILES  # files a checkpoint folder holds besides config.json and model.safetensors (any that exist)
    transformers_model_type = MODEL_TYPE  # config.json files with this model_type (and no zoo_format) load through ...

    @classmethod
    def from_transformers_folder(cls, folder: str | Path, *, filename: str = WEIGHTS_NAME, sha256: str | None = None,
                                 remedy: str = REFETCH) -> GPT2:
        """... this: see :func:`from_transformers_folder`."""
        return from_transformers_folder(folder, filename=filename, sha256=sha256, remedy=remedy)

    def __init__(self, config: GPT2Config, *, space: BPESpace | None = None) -> None:
        c = config
        space = space if space is not None else BPESpace.ascii(c.vocab_size)
        if space.size != c.vocab_size:
            raise ConfigError(f"the text space has {space.size} tokens but GPT2Config.vocab_size is {c.vocab_size}")
        super().__init__(config, space=space, context=c.n_positions, slide=c.slide)
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.h = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        for module in self.modules():  # transformers' initialisation (the weights are normally read from a checkpoint)
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def _run(self, ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        past = 0 if cache is None else cache.length
        if past + ids.shape[1] > self.config.n_positions:
            raise InvalidInputError(f"window of {past + ids.shape[1]} tokens exceeds the context of {self.config.n_positions}")
        x = self.wte(ids) + self.wpe.weight[past : past + ids.shape[1]]
        if takes_decode_token(self, ids, cache):
            c = self.config
            x = decode_token(x[:, 0], cache.k, cache.v, past, cache.layers, c.n_head, c.layer_norm_epsilon,
                             ACTIVATIONS[c.activation])[:, None]
        else:
            for i, block in enumerate(self.h):
                x = block(x, cache, i)
        if cache is not None:
            cache.length = past + ids.shape[1]
        h = self.ln_f(x)
        if cache is not None and cache.head is not None:
            return h @ cache.head
        return F.linear(h, self.wte.weight)  # the output layer is tied to the token embedding

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self._run(ids, None)

    def step(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        if cache is None:
            c = self.config
            cache = KVCache(c.n_layer, ids.shape[0], c.n_head, c.n_positions, c.n_embd // c.n_head, self.wte.weight)
            # The tied output layer as [n_embd, vocab], copied once per generation window: at batch 1 a matrix-vector
            # product over this layout ran 2.2x faster than over the embedding's [vocab, n_embd] (5.8 vs 12.9 ms per
            # token for GPT-2's 50257 x 768 on a 1-thread AMD EPYC), and the head is a third of GPT-2 small's weights.
            cache.head = self.wte.weight.t().contiguous()
            cache.layers = [block_weights(b.ln_1, b.attn.c_attn, b.attn.c_proj, b.ln_2, b.mlp.c_fc, b.mlp.c_proj) for b in self.h]
        return self._run(ids, cache), cache

    # ---- checkpoint folders: the tokenizer travels with the weights
    def save_extra(self, folder: str | Path) -> None:
        """Write the tokenizer next to config.json and model.safetensors (``save_pretrained`` calls this)."""
        self.space.save(folder)

    def load_extra(self, folder: str | Path) -> None:
        """Take the folder's tokenizer, when it has one (``load_folder`` calls this after loading the weights)."""
        folder = Path(folder)
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            self.space = BPESpace.from_folder(folder, size=self.config.vocab_size)


# --------------------------------------------------------------------------- transformers' format
def is_transformers_config(raw: Any) -> bool:
    """Whether a parsed config.json is transformers' GPT-2 config (``model_type: gpt2``) rather than zoo's."""
    return isinstance(raw, dict) and raw.get("model_type") == MODEL_TYPE and "zoo_format" not in raw


def config_from_transformers(raw: dict[str, Any], *, where: str = CONFIG_NAME) -> GPT2Config:
    """zoo's config from transformers' ``GPT2Config`` fields (its defaults where a field is absent)."""
    if not is_transformers_config(raw):
        raise CheckpointError(f"{where} is not a transformers GPT-2 config (model_type {raw.get('model_type')!r})")
    unsupported = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
                   "tie_word_embeddings": True}
    wrong = {k: raw[k] for k, ok in unsupported.items() if k in raw and raw[k] != ok}
    if wrong:
        raise CheckpointError(f"{where} uses GPT-2 options zoo does not implement: {wrong}")
    try:
        return GPT2Config(vocab_size=raw.get("vocab_size", 50257), n_positions=raw.get("n_positions", 1024),
                          n_embd=raw.get("n_embd", 768), n_layer=raw.get("n_layer", 12), n_head=raw.get("n_head", 12),
                          n_inner=raw.get("n_inner"), activation=raw.get("activation_function", "gelu_new"),
                          layer_norm_epsilon=raw.get("layer_norm_epsilon", 1e-5))
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def state_dict_from_transformers(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' ``GPT2LMHeadModel`` / ``GPT2Model`` keys to ours: prefix dropped, Conv1D weights transposed, mask buffers dropped.

    A stored ``lm_head.weight`` must equal the token embedding (GPT-2 ties them).
    """
    out: dict[str, torch.Tensor] = {}
    head = None
    for key, value in tensors.items():
        key = key.removeprefix("transformer.")
        if key.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers that older versions saved
            continue
        if key == "lm_head.weight":
            head = value
            continue
        out[key] = value.t().contiguous() if key.endswith(CONV1D) else value
    if head is not None and "wte.weight" in out and not torch.equal(head, out["wte.weight"]):
        raise CheckpointError("lm_head.weight differs from transformer.wte.weight: zoo's GPT-2 ties its output layer to the embedding")
    return out


def from_transformers_folder(folder: str | Path, *, filename: str = WEIGHTS_NAME, sha256: str | None = None,
                             remedy: str = REFETCH) -> GPT2:
    """A GPT-2 checkpoint folder in transformers' format as a zoo model (eval mode), its weights verified first when ``sha256`` is given."""
    folder = Path(folder)
    try:
        raw = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {folder / CONFIG_NAME}: {exc}") from None
    config = config_from_transformers(raw, where=str(folder / CONFIG_NAME))
    weights = folder / filename
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.glob("*.bin"))
        hint = f"; it has only pickle weights {pickles}, which zoo never loads" if pickles else ""
        raise CheckpointError(f"{folder} has no {filename}{hint}")
    if sha256 is not None and (actual := sha256_file(weights)) != sha256:
        raise CheckpointError(f"sha256 mismatch for {weights}: expected {sha256}, got {actual}; the file is corrupt or altered ({remedy})")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    model = GPT2(config, space=BPESpace.from_folder(folder, size=config.vocab_size))
    state = state_dict_from_transformers(tensors)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match its GPT-2 config: missing keys {missing[:8]}, unexpected keys {unexpected[:8]}")
    wrong = [f"{k}: file {list(t.shape)} vs model {list(expected[k].shape)}" for k, t in state.items() if t.shape != expected[k].shape]
    if wrong:
        raise CheckpointError(f"{weights} does not match its GPT-2 config: shape mismatch {wrong[:5]}")
    model.load_state_dict(state)
    return model.eval()
