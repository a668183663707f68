"""PixelCNN: its masks (channel groups, colour coupling), the configs the conformance suite does not run
(8-bit and colour: tests/test_contract.py checks the binary tiny preset), and its config errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import zoo
from zoo.layers import causal_mask

from .conftest import tiny_pixelcnn

CONFIGS = [
    dict(channels=1, levels=2),
    dict(channels=1, levels=256),
    dict(channels=3, levels=256, hidden=48, output_hidden=48),
    dict(channels=3, levels=2, hidden=48, output_hidden=48),
]


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda c: f"C{c['channels']}-L{c['levels']}")
def test_no_output_sees_its_present_or_future(overrides):
    """d(distribution of dim i) / d(input dim j) is exactly zero for every j at or after i (raster, then channel)."""
    model = tiny_pixelcnn(**overrides)
    c, h, w = model.space.shape
    x = torch.randn(1, c, h, w, requires_grad=True)
    params = model(x)  # [1, C * K, H, W], channel-major blocks
    block = model.distribution.num_params // c
    order = lambda ch, r, col: (r * w + col) * c + ch  # noqa: E731
    seen_past = 0
    for ch, r, col in itertools.product(range(c), range(h), range(w)):
        (grad,) = torch.autograd.grad(params[0, ch * block : (ch + 1) * block, r, col].sum(), x, retain_graph=True)
        for ch2, r2, col2 in itertools.product(range(c), range(h), range(w)):
            if order(ch2, r2, col2) >= order(ch, r, col):
                assert grad[0, ch2, r2, col2] == 0, f"output {(ch, r, col)} sees input {(ch2, r2, col2)}"
        seen_past += int(order(ch, r, col) > 0 and bool(grad.abs().sum() > 0))
    assert seen_past == c * h * w - 1  # every dimension but the first depends on something earlier


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_causal_mask_channel_groups(mask_type):
    mask = causal_mask(6, 3, 3, mask_type, groups=3)
    centre = mask[:, :, 1, 1]
    expected = torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.float)
    if mask_type == "B":
        expected += torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.float)
    assert torch.equal(centre, expected)
    assert mask[:, :, 2].sum() == 0 and mask[:, :, 1, 2].sum() == 0


def test_probabilities_of_all_8bit_1x2_images_sum_to_one():
    """The 256-way softmax path (the suite enumerates only the binary tiny preset)."""
    model = tiny_pixelcnn(height=1, width=2, levels=256)
    grid = torch.cartesian_prod(torch.arange(256), torch.arange(256)).view(-1, 1, 1, 2).to(torch.uint8)
    total = model.log_prob(grid).double().exp().sum()
    assert abs(float(total) - 1) < 1e-5


def test_per_dim_sums_to_log_prob_and_bits_per_dim(tiny_binary):
    x = (torch.rand(3, 1, 4, 4) > 0.5).to(torch.uint8)
    per_dim = tiny_binary.log_prob(x, per_dim=True)
    assert per_dim.shape == (3, 1, 4, 4)
    assert torch.allclose(per_dim.flatten(1).sum(1), tiny_binary.log_prob(x))
    expected = -tiny_binary.log_prob(x) / (16 * math.log(2))
    assert torch.allclose(tiny_binary.bits_per_dim(x), expected)


@pytest.mark.parametrize("overrides", CONFIGS[1:3], ids=lambda c: f"C{c['channels']}-L{c['levels']}")
def test_8bit_and_colour_fast_sampling_equals_naive(overrides):
    """The dependency-map cache on the softmax path and colour group by colour group (the suite runs only the binary preset)."""
    model = tiny_pixelcnn(**overrides)
    draw = lambda **kw: model.sample(3, generator=torch.Generator().manual_seed(7), **kw)  # noqa: E731
    fast = draw()
    assert fast.dtype == torch.uint8 and fast.shape == (3, *model.space.shape)
    assert torch.equal(fast, draw())
    assert torch.equal(fast, draw(naive=True))
    assert int(fast.max()) < model.space.levels


def test_low_temperature_approaches_the_mode(tiny_binary):
    cold = tiny_binary.sample(4, temperature=1e-4, generator=torch.Generator().manual_seed(1))
    again = tiny_binary.sample(4, temperature=1e-4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(cold, again)


def test_complete_with_every_row_known_returns_the_input(tiny_binary):
    x = (torch.rand(5, 1, 4, 4) > 0.5).to(torch.uint8)
    assert torch.equal(tiny_binary.complete(x, rows=4), x)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 1, 5, 4, dtype=torch.uint8), r"shape \[2, 1, 5, 4\].*\[N, 1, 4, 4\]"),
        (torch.zeros(2, 1, 4, 4), "integer levels"),
        (torch.full((2, 1, 4, 4), 2, dtype=torch.uint8), r"values in \[2, 2\].*levels 0..1"),
        ([[0, 1]], "must be a torch.Tensor"),
    ],
)
def test_bad_images_are_refused_with_what_is_accepted(tiny_binary, x, message):
    with pytest.raises(zoo.InvalidInputError, match=message):
        tiny_binary.log_prob(x)


def test_bad_completion_rows(tiny_binary):
    with pytest.raises(zoo.InvalidInputError, match="rows must be"):
        tiny_binary.complete(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), rows=9)


def test_paper_config_has_the_published_size():
    model = zoo.build("pixelcnn", "paper-cifar10")
    assert model.config.n_residual == 15 and model.config.hidden == 256
    assert model.space.shape == (3, 32, 32) and model.space.levels == 256
    with pytest.raises(zoo.ConfigError, match="presets"):
        zoo.build("pixelcnn", "nope")
    with pytest.raises(zoo.ConfigError, match="unknown pixelcnn config field"):
        zoo.build("pixelcnn", depth=3)
