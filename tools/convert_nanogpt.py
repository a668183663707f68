"""Convert a nanoGPT checkpoint (``ckpt.pt``) into a zoo char-transformer checkpoint folder.

    python tools/convert_nanogpt.py out/ckpt.pt --vocab-from data/shakespeare_char/input.txt -o converted/

nanoGPT's char models index the sorted set of characters of their training text (its
``prepare.py``), so the vocabulary is rebuilt from that text; no pickle (meta.pkl) is read.
The checkpoint itself is the maintainer's own local file, read with ``weights_only=True``.

nanoGPT has no begin-of-text token, so the converted config says ``bos: false``: a text is scored
from its first character, which is context only (not modelled: NaN in ``log_prob(per_dim=True)``),
and every later character gets exactly nanoGPT's probability. Sampling needs a prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.text import CharSpace

RENAMES = {
    "transformer.wte.weight": "wte.weight",
    "transformer.wpe.weight": "wpe.weight",
    "transformer.ln_f.weight": "ln_f.weight",
    "transformer.ln_f.bias": "ln_f.bias",
}
BLOCK_RENAMES = {
    "ln_1": "ln1", "ln_2": "ln2", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "mlp.c_fc": "mlp.0", "mlp.c_proj": "mlp.2",
}


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """nanoGPT parameter names (optionally ``_orig_mod.``-prefixed by torch.compile) to ours."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("_orig_mod.")
        if key == "lm_head.weight" or key.endswith(".attn.bias"):  # tied to wte / the causal-mask buffer of old versions
            continue
        if key in RENAMES:
            out[RENAMES[key]] = value
            continue
        parts = key.split(".")  # transformer.h.{i}.{module...}.{weight|bias}
        if parts[:2] != ["transformer", "h"]:
            raise KeyError(f"unexpected nanoGPT parameter {key!r}")
        inner = ".".join(parts[3:-1])
        if inner not in BLOCK_RENAMES:
            raise KeyError(f"unexpected nanoGPT parameter {key!r}")
        out[f"blocks.{parts[2]}.{BLOCK_RENAMES[inner]}.{parts[-1]}"] = value
    return out


def convert(checkpoint: dict[str, Any], vocab: str) -> Any:
    args = checkpoint["model_args"]
    if args["vocab_size"] != len(vocab):
        raise ValueError(f"the checkpoint has a vocabulary of {args['vocab_size']} characters, the text gives {len(vocab)}")
    model = zoo.build("char-transformer", vocab=vocab, context=args["block_size"], n_layer=args["n_layer"], n_head=args["n_head"],
                      n_embd=args["n_embd"], dropout=0.0, bias=args["bias"], bos=False)
    model.load_state_dict(convert_state_dict(checkpoint["model"]))
    return model.eval()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--vocab-from", type=Path, required=True, help="the text the model was trained on (nanoGPT's input.txt)")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args()
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = convert(checkpoint, CharSpace.from_text(args.vocab_from.read_text(encoding="utf-8")).vocab)
    model.save_pretrained(args.output)
    print(f"wrote {args.output} ({model.num_parameters():,} parameters); load it with zoo.load('local-dir:{args.output}')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
