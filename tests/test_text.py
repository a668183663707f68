"""Character language models: the transformer's window rule (scoring and normalisation across windows), batching,
sampling controls, errors, evaluation chunks, and the scripted one-token step of both Transformer families.

Generic causality, normalisation of 2-token texts, cached == naive generation, complete keeps the prompt, save/load and
the shared bad inputs are checked for both families by tests/test_contract.py."""

from __future__ import annotations

import itertools

import pytest
import torch

import zoo
from zoo.train import evaluate
from zoo.windows import TextChunks, TextWindows

FAMILIES = ["char-transformer", "char-lstm"]


def tiny(family: str, **overrides):
    model = zoo.build(family, "tiny", **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


def random_text(n: int, seed: int = 0, vocab: str = "abc \n") -> str:
    g = torch.Generator().manual_seed(seed)
    return "".join(vocab[i] for i in torch.randint(0, len(vocab), (n,), generator=g).tolist())


def test_probabilities_of_all_strings_across_windows_sum_to_one():
    """Strings of 5 characters through a context of 3 sliding by 1: the window jumps twice (the suite scores 2 tokens)."""
    model = tiny("char-transformer", context=3, slide=1)
    strings = ["".join(t) for t in itertools.product(model.space.vocab, repeat=5)]  # crosses the window twice
    total = model.log_prob(strings).double().exp().sum()
    assert abs(float(total) - 1) < 1e-4


def test_long_texts_follow_the_window_rule_exactly():
    model = tiny("char-transformer", context=6, slide=2)
    text = random_text(23, seed=1)
    seq = torch.cat([torch.tensor([model.space.bos]), model.space.encode(text)])
    expected = []
    for j in range(len(text)):  # brute force: one forward per character over its own window
        start = model.window_start(j)
        expected.append(model(seq[None, start : j + 1])[0, -1].log_softmax(-1)[seq[j + 1]])
    torch.testing.assert_close(model.log_prob(text, per_dim=True)[0], torch.stack(expected).detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_equals_single_and_prompts_are_kept(family):
    model = tiny(family)
    texts = ["abc a", "c", "bb b\nab"]
    batch = model.log_prob(texts)
    assert torch.allclose(batch, torch.cat([model.log_prob(t) for t in texts]), atol=1e-5)
    nats = model.log_prob(texts, per_dim=True)
    assert nats.shape == (3, 7) and torch.isnan(nats[1, 1:]).all()
    greedy = model.complete(texts, max_new_chars=5, top_k=1)
    assert [g[: len(t)] for g, t in zip(greedy, texts, strict=True)] == texts
    assert greedy == [model.complete(t, max_new_chars=5, top_k=1) for t in texts]  # greedy: batch equals single


@pytest.mark.parametrize("family", FAMILIES)
def test_per_character_rates_of_one_text_are_a_batch_of_one(family):
    """Like log_prob and bits_per_dim, a single str gives ``[1]`` (nats_per_char did before the contract commit)."""
    model = tiny(family)
    assert model.log_prob("abc").shape == model.bits_per_dim("abc").shape == (1,)
    assert model.nats_per_char("abc").shape == (1,)
    assert model.bits_per_byte("abc").shape == (1,)


def test_sampling_controls():
    model = tiny("char-transformer")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert model.sample(3, max_new_chars=12, generator=g()) == model.sample(3, max_new_chars=12, generator=g())
    stopped = model.complete("a", max_new_chars=200, stop=" ", generator=g())
    assert stopped.endswith(" ") and " " not in stopped[1:-1]
    nucleus = model.sample(4, max_new_chars=20, top_p=1e-6, generator=g())  # top_p -> keeps only the most likely
    assert nucleus == model.sample(4, max_new_chars=20, top_k=1, generator=g())
    assert model.complete("ab", max_new_chars=0) == "ab"


def test_errors_name_what_is_wrong():
    model = tiny("char-transformer")
    with pytest.raises(zoo.InvalidInputError, match=r"outside this model's vocabulary: 'XZ' \(2 distinct\); accepted: 'abc \\n'"):
        model.log_prob("abZcX")
    with pytest.raises(zoo.InvalidInputError, match="prompt has characters outside"):
        model.complete("Q")
    with pytest.raises(zoo.InvalidInputError, match="must be a str or a list of str"):
        model.log_prob(3)
    for kwargs, message in [(dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"), (dict(max_new_chars=-1), "max_new_chars"),
                            (dict(stop=""), "stop must be a non-empty str")]:
        with pytest.raises(zoo.InvalidInputError, match=message):
            model.complete("a", **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_evaluation_chunks_are_exact_log_probs(family):
    model = tiny(family)
    text = random_text(50, seed=2)
    chunks = model.prepare_dataset(text, train=False)
    assert isinstance(chunks, TextChunks) and len(chunks) == 50 // chunks.length
    result = evaluate(model, chunks, batch_size=2)
    pieces = [text[i * chunks.length : (i + 1) * chunks.length] for i in range(len(chunks))]
    assert result["nll_nats"] == pytest.approx(-float(model.log_prob(pieces).mean()), rel=1e-5)
    windows = model.prepare_dataset(text, train=True)
    assert isinstance(windows, TextWindows)
    (rows,) = windows.batch(torch.tensor([0, 1]))
    assert rows[0, 0] == model.space.bos and model.space.decode(rows[1]) == text[1 : 2 + windows.length]


def test_nanogpt_size_preset():
    model = zoo.build("char-transformer", "shakespeare-char")
    assert (model.config.n_layer, model.config.n_head, model.config.n_embd, model.config.context) == (6, 6, 384, 256)
    assert 10.5e6 < model.num_parameters() < 11e6  # nanoGPT reports 10.65M


@pytest.mark.parametrize("family", ["char-transformer", "gpt2"])
def test_scripted_token_steps_equal_the_modules(family):
    """Single-token steps at inference run zoo.decoding.decode_token; prompts, refills and training run the modules.

    Every step's logits and the cached keys/values must equal the module path's, with and without biases."""
    configs = [{}, {"bias": True}] if family == "char-transformer" else [{}, {"activation": "gelu"}]
    for overrides in configs:
        model = zoo.build(family, "tiny", **overrides)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5)  # non-zero biases and LayerNorm shifts
        model.eval()
        vocab = model.vocab_size if family == "char-transformer" else model.config.vocab_size
        ids = torch.randint(0, vocab, (2, model.context), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            full = model(ids)
            fast_logits, fast = model.step(ids[:, :3], None)
            slow_logits, slow = model.step(ids[:, :3], None)
            slow.layers = None  # the module path
            assert fast.layers is not None and len(fast.layers) == model.config.n_layer
            for t in range(3, model.context):
                fast_logits, fast = model.step(ids[:, t : t + 1], fast)
                slow_logits, slow = model.step(ids[:, t : t + 1], slow)
                torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(fast_logits[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fast.k, slow.k)
            torch.testing.assert_close(fast.v, slow.v)
    # with gradients on, steps take the modules, so they stay differentiable
    _, cache = model.step(ids[:, :3], None)
    logits, _ = model.step(ids[:, 3:4], cache)
    assert logits.requires_grad
