"""nanoGPT checkpoints convert into our char Transformer and compute the same function.

The reference below is an independent re-statement of nanoGPT's forward pass (its model.py:
pre-LN blocks, c_attn split q/k/v, GELU MLP, tied lm_head), written against nanoGPT's parameter
names so the conversion's renaming is checked end to end.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .helpers import load_tool

convert_nanogpt = load_tool("convert_nanogpt")

ARGS = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=True, vocab_size=5, dropout=0.0)


def nanogpt_state(compiled: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    e, v, c = ARGS["n_embd"], ARGS["vocab_size"], ARGS["block_size"]
    shapes = {"transformer.wte.weight": (v, e), "transformer.wpe.weight": (c, e), "transformer.ln_f.weight": (e,), "transformer.ln_f.bias": (e,)}
    for i in range(ARGS["n_layer"]):
        for name, shape in {"ln_1.weight": (e,), "ln_1.bias": (e,), "attn.c_attn.weight": (3 * e, e), "attn.c_attn.bias": (3 * e,),
                            "attn.c_proj.weight": (e, e), "attn.c_proj.bias": (e,), "ln_2.weight": (e,), "ln_2.bias": (e,),
                            "mlp.c_fc.weight": (4 * e, e), "mlp.c_fc.bias": (4 * e,), "mlp.c_proj.weight": (e, 4 * e),
                            "mlp.c_proj.bias": (e,)}.items():
            shapes[f"transformer.h.{i}.{name}"] = shape
    state = {k: torch.randn(*s, generator=g) * 0.3 for k, s in shapes.items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return {f"_orig_mod.{k}" if compiled else k: t for k, t in state.items()}


def nanogpt_forward(state: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    s = {k.removeprefix("_orig_mod."): t for k, t in state.items()}
    e, h = ARGS["n_embd"], ARGS["n_head"]
    x = s["transformer.wte.weight"][idx] + s["transformer.wpe.weight"][: idx.shape[1]]
    for i in range(ARGS["n_layer"]):
        p = lambda name: s[f"transformer.h.{i}.{name}"]  # noqa: B023, E731
        a = F.layer_norm(x, (e,), p("ln_1.weight"), p("ln_1.bias"))
        q, k, v = F.linear(a, p("attn.c_attn.weight"), p("attn.c_attn.bias")).split(e, dim=2)
        q, k, v = (z.view(*z.shape[:2], h, e // h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(e // h)
        att = att.masked_fill(torch.ones(idx.shape[1], idx.shape[1]).triu(1).bool(), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(y, p("attn.c_proj.weight"), p("attn.c_proj.bias"))
        m = F.layer_norm(x, (e,), p("ln_2.weight"), p("ln_2.bias"))
        x = x + F.linear(F.gelu(F.linear(m, p("mlp.c_fc.weight"), p("mlp.c_fc.bias"))), p("mlp.c_proj.weight"), p("mlp.c_proj.bias"))
    x = F.layer_norm(x, (e,), s["transformer.ln_f.weight"], s["transformer.ln_f.bias"])
    return x @ s["lm_head.weight"].T


def test_converted_model_computes_nanogpts_logits(tmp_path):
    for compiled in (False, True):
        state = nanogpt_state(compiled)
        model = convert_nanogpt.convert({"model_args": ARGS, "model": state}, "abc \n")
        idx = torch.randint(0, 5, (3, 8))
        torch.testing.assert_close(model(idx), nanogpt_forward(state, idx), rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path / "converted")
    import zoo

    loaded = zoo.load(f"local-dir:{tmp_path / 'converted'}")
    assert loaded.config.context == 8 and loaded.config.bias is True and loaded.config.bos is False
    torch.testing.assert_close(loaded(idx), model(idx))


VOCAB = "abc \n"


def window_start(j: int, context: int, slide: int) -> int:
    """The documented window rule: the prediction at input position j sees tokens [start(j), j]."""
    return 0 if j < context else ((j - context) // slide + 1) * slide


def nanogpt_per_char(state, text: str, slide: int) -> torch.Tensor:
    """log p(text[t] | window) from nanoGPT's forward; the first character is context only (NaN)."""
    idx = torch.tensor([[VOCAB.index(c) for c in text]])
    out = torch.full((len(text),), float("nan"))
    for j in range(len(text) - 1):  # input position j predicts character j + 1
        start = window_start(j, ARGS["block_size"], slide)
        logits = nanogpt_forward(state, idx[:, start : j + 1])[0, -1]
        out[j + 1] = logits.log_softmax(-1)[idx[0, j + 1]]
    return out


def test_converted_model_scores_like_nanogpt_from_the_first_character():
    state = nanogpt_state(False)
    model = convert_nanogpt.convert({"model_args": ARGS, "model": state}, VOCAB)
    assert model.space.bos is None
    g = torch.Generator().manual_seed(1)
    texts = ["".join(VOCAB[i] for i in torch.randint(0, 5, (n,), generator=g)) for n in (1, 2, 5, 8, 9, 23)]
    lp = model.log_prob(texts, per_dim=True)
    for row, text in zip(lp, texts, strict=True):
        torch.testing.assert_close(row[: len(text)], nanogpt_per_char(state, text, model.slide), rtol=1e-5, atol=1e-5, equal_nan=True)
        assert torch.isnan(row[0])
    totals = model.log_prob(texts)
    torch.testing.assert_close(totals, lp.nan_to_num().sum(1), rtol=1e-5, atol=1e-5)
    assert totals[0] == 0  # one character: nothing is modelled
