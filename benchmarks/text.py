"""Character generation speed: KV-cache vs naive recomputation (Transformer) and the LSTM, side by side.

    python benchmarks/text.py [--chars 512] [--threads N]

Random weights at nanoGPT's shakespeare_char size (6 layers, 6 heads, 384 wide, context 256),
batch 1, fp32. The prompt fills the context, so every step runs at a full 256-character window.
Both paths draw the same characters for the same seed, which the script checks.
"""

from __future__ import annotations

import argparse
import time

import torch

import zoo


def chars_per_second(model, prompt: str, chars: int, naive: bool) -> tuple[float, str]:
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    out = model.complete(prompt, max_new_chars=chars, generator=g, naive=naive, progress=False)
    return chars / (time.perf_counter() - start), out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chars", type=int, default=512)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gpt = zoo.build("char-transformer", "shakespeare-char", dropout=0.0).eval()
    prompt = ("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 8)[: gpt.config.context - 1]
    gpt.complete(prompt, max_new_chars=4, progress=False)  # warm-up
    print(f"char-transformer {gpt.num_parameters() / 1e6:.2f}M params, context {gpt.config.context}, threads={torch.get_num_threads()}")
    cached, text_cached = chars_per_second(gpt, prompt, args.chars, naive=False)
    naive, text_naive = chars_per_second(gpt, prompt, min(args.chars, 64), naive=True)
    assert text_naive == text_cached[: len(text_naive)], "KV-cache generation must equal naive recomputation"
    print(f"  KV cache: {cached:8.1f} chars/s")
    print(f"  naive   : {naive:8.1f} chars/s (one full forward over the window per character)")
    print(f"  ratio KV cache / naive: {cached / naive:.1f}x")
    lstm = zoo.build("char-lstm", "char-rnn").eval()
    lstm.complete(prompt, max_new_chars=4, progress=False)
    rate, _ = chars_per_second(lstm, prompt, args.chars, naive=False)
    print(f"char-lstm 2x128 (char-rnn default), state carried: {rate:8.1f} chars/s")


if __name__ == "__main__":
    main()
