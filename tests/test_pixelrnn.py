"""PixelRNN (Row LSTM, Diagonal BiLSTM): skewing, receptive fields, colour coupling, state-carrying sampling.

The conformance suite (tests/test_contract.py) runs the Diagonal BiLSTM's binary ``tiny`` preset; the Row LSTM
(``tiny-row-lstm``) and the 8-bit and colour configs get their generic checks here."""

from __future__ import annotations

import itertools

import pytest
import torch

import zoo
from zoo.layers import diagonal_order

from .helpers import input_dependencies, randomized

KINDS = {"diagonal": "tiny", "row": "tiny-row-lstm"}


def tiny_rnn(kind: str = "diagonal", open_relus: bool = False, **overrides):
    """A tiny PixelRNN with random weights; ``open_relus`` shifts biases up so no output ReLU is dead everywhere."""
    model = zoo.build("pixelrnn", KINDS[kind], **overrides)
    return randomized(model, open_relus)


def test_skew_unskew_round_trip():
    height, width = 5, 7
    order, spans = diagonal_order(height, width)
    assert sorted(order.tolist()) == list(range(height * width))  # a permutation: nothing lost or repeated
    x = torch.randn(2, 3, height, width)
    skewed = x.flatten(2)[:, :, order]
    start = 0
    for col, (top, bottom) in enumerate(spans):  # column k of the skew is the anti-diagonal r + c = k
        for i, r in enumerate(range(top, bottom + 1)):
            assert torch.equal(skewed[:, :, start + i], x[:, :, r, col - r])
        start += bottom - top + 1
    assert start == height * width and len(spans) == height + width - 1
    unskewed = torch.empty_like(skewed)
    unskewed[:, :, order] = skewed
    assert torch.equal(unskewed.view_as(x), x)
    assert diagonal_order(1, 4)[1] == ((0, 0), (0, 0), (0, 0), (0, 0))


SHAPES = [dict(channels=1, levels=2), dict(channels=3, levels=256), dict(channels=3, levels=2)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("overrides", SHAPES, ids=lambda c: f"C{c['channels']}-L{c['levels']}")
def test_no_output_sees_its_present_or_future(kind, overrides):
    model = tiny_rnn(kind, open_relus=True, **overrides)
    dims, seen = input_dependencies(model)
    for i, dim in enumerate(dims):
        assert seen[dim] <= set(dims[:i]), f"output {dim} sees {seen[dim] - set(dims[:i])}"
        r, col, ch = dim  # the pixels left and above and, within a pixel, every earlier colour always matter
        assert col == 0 or (r, col - 1, 0) in seen[dim]
        assert r == 0 or (r - 1, col, 0) in seen[dim]
        assert {(r, col, c2) for c2 in range(ch)} <= seen[dim]


def test_diagonal_bilstm_field_is_everything_before_but_one_corner():
    """The Diagonal BiLSTM sees every earlier dim, up-right pixels included, save one: like every mask-B
    feature, the right-to-left direction's input at (r-1, W-1) excludes that pixel's last colour, which
    then reaches (r, c) only through the input convolution (so columns c < W-1-k//2 miss it)."""
    model = tiny_rnn("diagonal", open_relus=True, channels=3, levels=2)
    dims, seen = input_dependencies(model)
    w, reach = model.config.width, model.config.input_kernel // 2
    for i, (r, col, ch) in enumerate(dims):
        gap = {(r - 1, w - 1, 2)} if r >= 1 and w - 1 > col + reach else set()
        assert seen[(r, col, ch)] == set(dims[:i]) - gap


def test_row_lstm_field_is_the_triangle_above():
    """Row LSTM: the row above through a 3-wide state-to-state kernel, so (1, 0) sees (0, 1) but not (0, 3)."""
    model = tiny_rnn("row", open_relus=True)
    _, seen = input_dependencies(model)
    assert (0, 1, 0) in seen[(1, 0, 0)] and (0, 3, 0) not in seen[(1, 0, 0)]
    assert (0, 3, 0) in seen[(3, 0, 0)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("overrides", SHAPES[:2], ids=lambda c: f"C{c['channels']}-L{c['levels']}")
@pytest.mark.parametrize("rows", [0, 1, 3])
def test_state_carrying_sampling_equals_naive(kind, overrides, rows):
    model = tiny_rnn(kind, **overrides)
    x = model.example_batch(3)
    draw = lambda **kw: model.complete(x, rows=rows, generator=torch.Generator().manual_seed(11), **kw)  # noqa: E731
    fast = draw()
    assert torch.equal(fast, draw(naive=True))
    assert torch.equal(fast[:, :, :rows], x[:, :, :rows])
    assert fast.dtype == torch.uint8 and int(fast.max()) < model.space.levels


def test_row_lstm_sample_is_seeded():
    model = tiny_rnn("row")
    a = model.sample(4, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 1, 4, 4) and torch.equal(a, model.sample(4, generator=torch.Generator().manual_seed(2)))


def test_row_lstm_probabilities_of_all_binary_2x2_images_sum_to_one():
    model = tiny_rnn("row", height=2, width=2)
    images = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.uint8).view(16, 1, 2, 2)
    assert abs(float(model.log_prob(images).double().exp().sum()) - 1) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_of_all_8bit_1x2_images_sum_to_one(kind):
    model = tiny_rnn(kind, height=1, width=2, levels=256)
    grid = torch.cartesian_prod(torch.arange(256), torch.arange(256)).view(-1, 1, 1, 2).to(torch.uint8)
    assert abs(float(model.log_prob(grid).double().exp().sum()) - 1) < 1e-5


def test_per_dim_sums_to_log_prob():
    model = tiny_rnn()
    x = model.example_batch(3)
    assert torch.allclose(model.log_prob(x, per_dim=True).flatten(1).sum(1), model.log_prob(x))


def test_row_lstm_save_load_round_trip(tmp_path):
    model = tiny_rnn("row")
    model.save_pretrained(tmp_path / "m")
    loaded = zoo.load(f"local-dir:{tmp_path / 'm'}")
    assert loaded.config == model.config
    x = model.example_batch(3)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_config_errors():
    with pytest.raises(zoo.ConfigError, match="kind must be one of"):
        zoo.build("pixelrnn", "tiny", kind="gru")
    with pytest.raises(zoo.ConfigError, match="unconditional"):
        zoo.build("pixelrnn", "tiny", labels=["a"])


def test_paper_mnist_config():
    model = zoo.build("pixelrnn", "paper-mnist")
    c = model.config
    assert (c.kind, c.n_layers, c.hidden, c.levels, c.height) == ("diagonal-bilstm", 7, 16, 2, 28)
    assert zoo.build("pixelrnn", "row-lstm-mnist").config.kind == "row-lstm"
