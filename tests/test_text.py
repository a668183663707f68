"""Character language models: causality, normalisation, the window rule, cached generation, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

import zoo
from zoo.text import TextChunks, TextWindows
from zoo.train import evaluate

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


@pytest.mark.parametrize("family", FAMILIES)
def test_later_characters_never_change_earlier_log_probs(family):
    model = tiny(family)
    text = random_text(30)  # longer than the transformer's context of 8: crosses several windows
    base = model.log_prob(text, per_dim=True)[0]
    for s in range(len(text)):
        changed = text[:s] + ("a" if text[s] != "a" else "b") + text[s + 1 :]
        other = model.log_prob(changed, per_dim=True)[0]
        assert torch.equal(base[:s], other[:s]), f"changing character {s} changed an earlier log-probability"
        assert not torch.equal(base[s:], other[s:])


@pytest.mark.parametrize("family", FAMILIES)
def test_probabilities_of_all_strings_of_a_length_sum_to_one(family):
    overrides = dict(context=3, slide=1) if family == "char-transformer" else {}
    model = tiny(family, **overrides)
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
def test_cached_generation_equals_naive_recomputation(family):
    model = tiny(family)
    cached, naive = (model.complete(["ab", "ba"], max_new_chars=40, generator=torch.Generator().manual_seed(3), naive=naive)
                     for naive in (False, True))
    assert cached == naive and all(len(t) == 42 for t in cached)


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
    assert model.nats_per_char("abc").shape == (1,)


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
    for kwargs, message in [(dict(temperature=0), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"),
                            (dict(max_new_chars=-1), "max_new_chars")]:
        with pytest.raises(zoo.InvalidInputError, match=message):
            model.complete("a", **kwargs)
    with pytest.raises(zoo.InvalidInputError, match="unconditional"):
        model.sample(1, condition="x")


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
