"""Gated PixelCNN: no blind spot (every earlier dim seen), colour coupling, class conditioning, and the 8-bit and colour
configs the conformance suite (tests/test_contract.py, binary tiny preset) does not run."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.graph import DependencyCache

from .helpers import input_dependencies, randomized


def tiny_gated(open_relus: bool = False, **overrides):
    """A tiny Gated PixelCNN with random weights; ``open_relus`` shifts biases up so no ReLU is dead everywhere."""
    model = zoo.build("gated-pixelcnn", "tiny", **overrides)
    return randomized(model, open_relus)


CONFIGS = [
    dict(channels=1, levels=2),
    dict(channels=1, levels=256),
    dict(channels=3, levels=256, hidden=12, output_hidden=12),
    dict(channels=3, levels=2, hidden=12, output_hidden=12),
]


@pytest.mark.parametrize("overrides", CONFIGS, ids=lambda c: f"C{c['channels']}-L{c['levels']}")
def test_each_dim_sees_exactly_every_earlier_dim(overrides):
    """Causal (nothing at or after a dim) and no blind spot: the 3-layer tiny model's field covers the 4x4 image,
    so every earlier pixel, up-right ones included, and the earlier colours of the same pixel must matter."""
    model = tiny_gated(open_relus=True, **overrides)
    dims, seen = input_dependencies(model)
    for i, dim in enumerate(dims):
        assert seen[dim] == set(dims[:i]), f"output {dim}: extra {seen[dim] - set(dims[:i])}, blind {set(dims[:i]) - seen[dim]}"


def test_up_right_pixels_reach_the_next_row_start():
    """The case PixelCNN's masks miss: pixel (1, 0) depends on (0, 3), three columns to the right one row up."""
    model = tiny_gated(open_relus=True)
    _, seen = input_dependencies(model)
    assert (0, 3, 0) in seen[(1, 0, 0)]
    pixelcnn = zoo.build("pixelcnn", "tiny").eval()
    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(pixelcnn(x)[0, :, 1, 0].sum(), x)
    assert grad[0, 0, 0, 3] == 0  # the blind spot the vertical stack removes


def test_conditional_model_is_causal_for_every_label():
    model = tiny_gated(open_relus=True, labels=["a", "b"])
    dims, seen = input_dependencies(model, torch.tensor([1]))
    assert all(seen[d] == set(dims[:i]) for i, d in enumerate(dims))


def test_probabilities_of_all_8bit_1x2_images_sum_to_one():
    """The 256-way softmax path (the suite enumerates only the binary tiny preset)."""
    model = tiny_gated(height=1, width=2, levels=256)
    grid = torch.cartesian_prod(torch.arange(256), torch.arange(256)).view(-1, 1, 1, 2).to(torch.uint8)
    assert abs(float(model.log_prob(grid).double().exp().sum()) - 1) < 1e-5


@pytest.mark.parametrize("overrides", [*CONFIGS[1:], dict(CONFIGS[2], labels=["a", "b", "c"])],
                         ids=["C1-L256", "C3-L256", "C3-L2", "C3-L256-conditional"])
@pytest.mark.parametrize("rows", [0, 2])
def test_8bit_and_colour_cached_sampling_equals_naive(overrides, rows):
    """The dependency-map cache colour group by colour group, class embeddings cut to each group's gates (the suite runs
    the binary grey preset only)."""
    model = tiny_gated(**overrides)
    assert isinstance(model.incremental_cache(model.example_batch(1), None if not model.labels else torch.tensor([0]), 0),
                      DependencyCache)
    condition = ["a", "c", "b"] if overrides.get("labels") else None
    x = model.example_batch(3)
    draw = lambda **kw: model.complete(x, rows=rows, condition=condition, generator=torch.Generator().manual_seed(7), **kw)  # noqa: E731
    fast = draw()
    assert torch.equal(fast, draw(naive=True))
    assert torch.equal(fast[:, :, :rows], x[:, :, :rows])
    assert fast.dtype == torch.uint8 and int(fast.max()) < model.space.levels


def test_a_condition_by_name_draws_what_its_id_draws():
    model = tiny_gated(labels=["0", "1"])
    a = model.sample(4, condition="1", generator=torch.Generator().manual_seed(3))
    assert a.shape == (4, 1, 4, 4) and torch.equal(a, model.sample(4, condition=1, generator=torch.Generator().manual_seed(3)))


def test_conditioning_changes_the_distribution():
    model = tiny_gated(labels=["a", "b"])
    x = model.example_batch(5)
    lp_a, lp_b = model.log_prob(x, condition="a"), model.log_prob(x, condition="b")
    assert not torch.allclose(lp_a, lp_b)
    mixed = model.log_prob(x, condition=torch.tensor([0, 1, 0, 1, 0]))
    assert torch.allclose(mixed[0::2], lp_a[0::2]) and torch.allclose(mixed[1::2], lp_b[1::2])


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (torch.tensor([[0, 1]]), r"LongTensor\[N\]"),
        (torch.tensor([0.0, 1.0]), r"LongTensor\[N\]"),
        (5, r"must be in 0..1"),
        (torch.tensor([0, -1]), r"must be in 0..1"),
        (torch.tensor([0, 1, 1]), "3 condition values for a batch of 2"),
        ("z", "unknown condition 'z'"),
    ],
)
def test_bad_conditions_are_refused_clearly(condition, message):
    model = tiny_gated(labels=["a", "b"])
    with pytest.raises(zoo.InvalidInputError, match=message):
        model.log_prob(model.example_batch(2), condition=condition)
    with pytest.raises(zoo.InvalidInputError, match=message):
        model.sample(2, condition=condition)


def test_presets_and_config_errors():
    with torch.device("meta"):
        paper = zoo.build("gated-pixelcnn", "paper-cifar10")
    assert paper.config.n_layers == 20 and paper.config.hidden == 384 and paper.space.shape == (3, 32, 32)
    assert zoo.build("gated-pixelcnn", "mnist").labels == [str(i) for i in range(10)]
    with pytest.raises(zoo.ConfigError, match="odd"):
        zoo.build("gated-pixelcnn", "tiny", kernel=4)
    with pytest.raises(zoo.ConfigError, match="levels"):
        zoo.build("gated-pixelcnn", "tiny", levels=16)


def test_channel_by_channel_sampling_refuses_ops_that_mix_colour_groups():
    """A gated unit must pair gates of one colour: halving a contiguously grouped map (R, R, G | G, B, B) is refused, as is
    any point op that changes the channel count otherwise."""
    from zoo.graph import INPUT, OUTPUT, Op, colour_groups
    from zoo.layers import MaskedConv2d, gated_activation

    conv = MaskedConv2d(3, 6, 3, "A", 3)
    x = torch.zeros(1, 3, 4, 4)
    for module, message in [(gated_activation, "gated units over two halves grouped alike"), (lambda t: t[:, :4], "6 channels to 4")]:
        ops = [Op("conv", "a", (INPUT,), conv), Op("point", OUTPUT, ("a",), module)]
        acts = {INPUT: x, "a": conv(x), OUTPUT: module(conv(x))}
        with pytest.raises(ValueError, match=message):
            colour_groups(ops, acts, 3)
