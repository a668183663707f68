"""GPT-2-small greedy generation, batch 1: zoo's KV cache side by side with transformers' ``generate``.

    python benchmarks/gpt2.py [--new-tokens 64] [--prompt-tokens 16] [--threads 1] [--repeats 3]

Random weights at GPT-2 small's size (12 layers, 12 heads, 768 wide, vocabulary 50257, context
1024: 124M parameters), the same weights in both (transformers' model saved with its own
``save_pretrained``, read by ``zoo.models.gpt2.from_transformers_folder``), fp32, greedy decoding
with a KV cache on both sides (zoo: ``top_k=1``; transformers: ``do_sample=False``). The two
runs alternate and the best of ``--repeats`` is kept, so a busy shared machine slows both alike;
the script checks both produced the same tokens and prints one JSON line.

``floor_tokens_per_s`` is the rate of the weight matrices' matrix-vector products alone (every
weight read once per token, nothing else): at batch 1 in fp32 both implementations stream about
500 MB of weights per token, so neither can beat that floor, and the ratio between the two is
bounded by what transformers spends beyond it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F

from zoo.models.gpt2 import from_transformers_folder


def zoo_greedy(model, prompt: torch.Tensor, new: int) -> torch.Tensor:
    """The model's own generation path (StepCache + categorical draw with top_k=1) on token ids."""
    from zoo.text import StepCache

    tokens = torch.cat([prompt, prompt.new_zeros(1, new)], dim=1)
    cache = StepCache(model, tokens, prompt.shape[1], None)
    first = prompt.shape[1]
    model.run_generation(cache, first, first + new, 1, 1.0, torch.Generator().manual_seed(0), False, "token", {"top_k": 1})
    return tokens[:, first:]


def matvec_floor(model, repeats: int) -> float:
    """Seconds per token of the matrix-vector products alone: each Linear's weight and the tied output layer, once,
    in the layouts zoo's generation reads them (the head as ``[n_embd, vocab]``, see ``GPT2.step``)."""
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    head = model.wte.weight.t().contiguous()
    xs = {w.shape[1]: torch.randn(1, w.shape[1]) for w in weights}
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for w in weights:
            F.linear(xs[w.shape[1]], w)
        xs[head.shape[0]] @ head
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        from zoo.bpe import BPESpace

        BPESpace.ascii(50257).save(tmp)  # a tokenizer file for the folder; generation here works on ids
        zoo_model = from_transformers_folder(tmp)
    prompt = torch.randint(0, 50257, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(1))
    n = args.new_tokens

    def run_hf() -> torch.Tensor:
        out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                          use_cache=True, pad_token_id=50256)
        return out[:, prompt.shape[1]:]

    def run_zoo() -> torch.Tensor:
        return zoo_greedy(zoo_model, prompt, n)

    times: dict[str, list[float]] = {"zoo": [], "transformers": []}
    outputs = {}
    with torch.inference_mode():
        run_hf(), run_zoo()  # warm-up
        for _ in range(args.repeats):
            for name, fn in (("transformers", run_hf), ("zoo", run_zoo)):
                start = time.perf_counter()
                outputs[name] = fn()
                times[name].append(time.perf_counter() - start)
        floor = matvec_floor(zoo_model, args.repeats)
    assert torch.equal(outputs["zoo"], outputs["transformers"]), "zoo and transformers must generate the same greedy tokens"
    best = {k: min(v) for k, v in times.items()}
    result = {"benchmark": "gpt2-small greedy, batch 1", "params_m": round(zoo_model.num_parameters() / 1e6, 1),
              "prompt_tokens": args.prompt_tokens, "new_tokens": n, "threads": torch.get_num_threads(),
              "zoo_tokens_per_s": round(n / best["zoo"], 2), "transformers_tokens_per_s": round(n / best["transformers"], 2),
              "speedup": round(best["transformers"] / best["zoo"], 2), "floor_tokens_per_s": round(1 / floor, 2), "same_tokens": True,
              "kv_cache_mib": round(2 * zoo_model.config.n_layer * zoo_model.config.n_positions * zoo_model.config.n_embd * 4 / 2**20, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
