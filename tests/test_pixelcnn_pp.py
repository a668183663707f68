"""PixelCNN++: both streams' receptive fields, the coupled mixture's per-channel conditionals, the dependency cache's
activations, the grey config the conformance suite does not run, conversion from the reference and the CLI.

Generic causality, fast == naive, complete and save/load of the ``tiny`` preset (RGB, and class-conditional) are
checked by tests/test_contract.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.distributions import DiscretizedLogisticMixture
from zoo.errors import ConfigError, InvalidInputError
from zoo.graph import OUTPUT, DependencyCache, dependency_maps, run_graph
from zoo.models.pixelcnn_pp import with_border

from .helpers import load_tool, randomized

TINY = dict(height=8, width=8, nr_resnet=1, nr_filters=8, nr_logistic_mix=2, dropout=0.0)
CONFIGS = {
    "rgb": TINY,
    "grey-deeper": dict(TINY, channels=1, nr_resnet=2, nr_logistic_mix=3),
    "conditional": dict(TINY, labels=["cat", "dog"]),
}


def random_model(**overrides) -> zoo.AutoregressiveModel:
    torch.manual_seed(0)
    return randomized(zoo.build("pixelcnn++", None, **overrides))


def test_grey_deeper_network_is_causal():
    """The grey, two-block, three-component config (the suite runs the RGB tiny preset): the parameters at a pixel
    depend on no pixel at or after it, and on some pixel before it."""
    model = random_model(**CONFIGS["grey-deeper"])
    _, h, w = model.space.shape
    x = model.space.to_unit(model.example_batch(1)).requires_grad_(True)
    params = model(x)
    order = torch.arange(h * w).view(h, w)
    for i, j in [(0, 0), (0, w - 1), (h // 2, w // 2), (h - 1, 0), (h - 1, w - 1)]:
        (grad,) = torch.autograd.grad(params[0, :, i, j].sum(), x, retain_graph=True)
        seen = grad[0].abs() > 0
        assert not seen[:, order >= order[i, j]].any(), f"the parameters at ({i},{j}) see the pixel itself or a later one"
        assert seen[:, order < order[i, j]].any() or (i, j) == (0, 0)


def test_channel_coupling_within_a_pixel():
    """For fixed parameters, log p(G | R) moves with R, log p(B | R, G) with R and G, and log p(R) with neither."""
    model = random_model(**TINY)
    levels = model.example_batch(1).long()
    with torch.no_grad():
        params = model(model.space.to_unit(levels))
    mixture = model.distribution
    base = mixture.log_prob(params, levels)[0, :, 3, 3]
    for c in range(3):
        changed = levels.clone()
        changed[0, c, 3, 3] = (changed[0, c, 3, 3] + 37) % 256
        lp = mixture.log_prob(params, changed)[0, :, 3, 3]
        assert torch.equal(lp[:c], base[:c]), f"changing channel {c} moved an earlier channel's conditional"
        assert (lp[c:] != base[c:]).all(), f"changing channel {c} left its own or a later channel's conditional unchanged"


def test_both_streams_have_the_receptive_field_they_claim():
    """The u stream sees only rows above; ul also the pixels to the left in the current row."""
    model = random_model(**TINY)
    ops = model.graph()
    deps = dependency_maps(ops, run_graph(ops, with_border(torch.zeros(1, 3, 8, 8))))
    w = 8
    u_init, ul_init = deps[ops[0].out][0], deps[ops[3].out][0]
    assert (u_init[0] == -1).all() and (u_init[3, :] <= 2 * w + w - 1).all()  # row 3: at most the end of row 2
    assert ul_init[3, 4] == 3 * w + 3  # up to the pixel to its left
    out = deps[OUTPUT][0]
    previous = torch.arange(64, dtype=out.dtype).view(8, 8) - 1
    assert (out <= previous).all()  # causal: at most the pixel before
    assert torch.equal(out[:, 1:], previous[:, 1:])  # and the ul stream always sees the pixel to the left


def test_mixture_is_normalised_per_channel():
    """For one pixel: the 256 values of R sum to 1; for a fixed R the 256 values of G sum to 1; the same for B
    (the suite's per-dimension check lands on R and B channels only)."""
    model = random_model(**TINY)
    with torch.no_grad():
        params = model(model.space.to_unit(model.example_batch(1)))[:, :, 2:3, 5:6].expand(256, -1, -1, -1)
    mixture = DiscretizedLogisticMixture(256, 2, 3, log_scale_min=-7.0)
    for c, fixed in [(0, (0, 0)), (1, (178, 0)), (2, (102, 217))]:
        x = torch.zeros(256, 3, 1, 1, dtype=torch.long)
        x[:, 0], x[:, 1] = fixed
        x[:, c, 0, 0] = torch.arange(256)
        total = mixture.log_prob(params, x)[:, c, 0, 0].double().exp().sum()
        assert abs(total.item() - 1) < 1e-4


def test_per_channel_conditionals_sum_to_the_reference_joint():
    """Sum over channels equals log sum_k pi_k prod_c p_k(x_c | x_<c), written out directly."""
    torch.manual_seed(0)
    model = zoo.build("pixelcnn++", None, **TINY).eval()  # default init: no bin falls under the 1e-5 fallback
    levels = model.example_batch(2)
    lp = model.log_prob(levels, per_dim=True)
    params = model(model.space.to_unit(levels)).double()
    x = model.space.to_unit(levels).double()
    m = 2
    logits, rest = params[:, :m], params[:, m:].reshape(2, 3, 3, m, 8, 8)
    means, log_s, coef = rest[:, :, 0], rest[:, :, 1].clamp(min=-7), rest[:, :, 2].tanh()
    total = F.log_softmax(logits, 1)
    for c in range(3):
        mean = means[:, c] + sum(coef[:, i] * x[:, k, None] for i, k in {0: [], 1: [(0, 0)], 2: [(1, 0), (2, 1)]}[c])
        centred = x[:, c, None] - mean
        upper = torch.where(x[:, c, None] > 0.999, torch.ones_like(centred), torch.sigmoid((centred + 1 / 255) / log_s[:, c].exp()))
        lower = torch.where(x[:, c, None] < -0.999, torch.zeros_like(centred), torch.sigmoid((centred - 1 / 255) / log_s[:, c].exp()))
        total = total + torch.log(upper - lower)
    joint = torch.logsumexp(total, 1)
    torch.testing.assert_close(lp.sum(1).double(), joint, rtol=1e-4, atol=1e-3)
    assert math.isclose(float(lp.sum()), float(model.log_prob(levels).sum()), rel_tol=1e-6)


def test_grey_deeper_fast_sampling_equals_naive_sampling():
    model = random_model(**CONFIGS["grey-deeper"])
    draw = lambda naive: model.sample(2, generator=torch.Generator().manual_seed(5), naive=naive)  # noqa: E731
    fast = draw(False)
    assert torch.equal(fast, draw(True))
    assert fast.float().std() > 10  # random weights: a spread of values, not a constant image


def test_fast_sampler_caches_equal_a_full_forward():
    """Recording every pixel, the parameters asked of the cache at each step and, after the last pixel, every cached
    output equal the full forward on the final image."""
    model = random_model(**TINY)
    levels = model.example_batch(2).long()
    with torch.no_grad():
        full = model(model.space.to_unit(levels))
        cache = model.incremental_cache(torch.zeros_like(levels), None, 0)
        assert isinstance(cache, DependencyCache)
        for t in range(8 * 8):
            i, j = divmod(t, 8)
            torch.testing.assert_close(cache.params_at(t), full[:, :, i, j], rtol=1e-5, atol=1e-5)
            cache.update(t, levels[:, :, i, j])
    torch.testing.assert_close(cache.acts[OUTPUT], full, rtol=1e-5, atol=1e-5)


def test_conditioning_changes_the_distribution_and_checks_labels():
    model = random_model(**CONFIGS["conditional"])
    x = model.example_batch(2)
    assert not torch.allclose(model.log_prob(x, condition="cat"), model.log_prob(x, condition="dog"))
    with pytest.raises(InvalidInputError, match="unknown condition 'bird'"):
        model.log_prob(x, condition="bird")


def test_bad_inputs_and_configs_are_named():
    model = random_model(**TINY)
    with pytest.raises(InvalidInputError, match="shape"):
        model.log_prob(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="integer levels"):
        model.log_prob(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="multiples of 4"):
        zoo.build("pixelcnn++", None, **dict(TINY, height=6))
    with pytest.raises(ConfigError, match=r"PixelCNNPPConfig.levels must be one of \[256\]"):
        zoo.build("pixelcnn++", None, **dict(TINY, levels=2))


def test_training_loss_is_bits_per_dim_and_learns():
    model = random_model(**TINY).train()
    x = model.example_batch(4)
    nats, dims = model.training_loss((x, None))
    assert dims == x.numel() and nats > 0
    torch.testing.assert_close(nats / dims / math.log(2), model.eval().bits_per_dim(x).mean(), rtol=1e-4, atol=1e-4)


def test_paper_config_has_the_published_size():
    model = zoo.build("pixelcnn++", "paper")
    c = model.config
    assert (c.nr_resnet, c.nr_filters, c.nr_logistic_mix, c.dropout) == (5, 160, 10, 0.5)
    assert 50e6 < model.num_parameters() < 56e6  # the paper's CIFAR-10 model: about 53M parameters


# ------------------------------------------------------------------------ conversion
convert_pixelcnn_pp = load_tool("convert_pixelcnn_pp")

# Parameter names written out from pclucas14/pixel-cnn-pp's model.py/layers.py (legacy weight_norm,
# nin as a Linear called lin_a, conv/deconv attributes), wrapped by nn.DataParallel.
REFERENCE_KEYS = [
    "module.u_init.conv.weight_g", "module.u_init.conv.weight_v", "module.u_init.conv.bias",
    "module.ul_init.1.conv.weight_v", "module.up_layers.0.u_stream.0.conv_input.conv.weight_v",
    "module.up_layers.2.ul_stream.0.nin_skip.lin_a.weight_g", "module.down_layers.1.ul_stream.1.nin_skip.lin_a.weight_v",
    "module.downsize_ul_stream.1.conv.weight_g", "module.upsize_u_stream.0.deconv.weight_g",
    "module.upsize_ul_stream.1.deconv.bias", "module.nin_out.lin_a.weight_v",
]


def reference_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under the reference's names: legacy torch.nn.utils.weight_norm, DataParallel prefix."""
    from dataclasses import asdict

    from torch.nn.utils import parametrize

    legacy = zoo.build("pixelcnn++", None, **asdict(model.config))  # (deepcopy mishandles parametrized modules)
    legacy.load_state_dict(model.state_dict())
    for module in list(legacy.modules()):
        if parametrize.is_parametrized(module, "weight"):
            g = module.parametrizations.weight.original0.detach().clone()
            v = module.parametrizations.weight.original1.detach().clone()
            parametrize.remove_parametrizations(module, "weight")
            torch.nn.utils.weight_norm(module, dim=0)
            module.weight_g.data.copy_(g)
            module.weight_v.data.copy_(v)
    return {f"module.{k}": v for k, v in legacy.state_dict().items()}


def test_reference_state_dict_converts_into_the_same_function(tmp_path):
    model = random_model(**dict(TINY, height=32, width=32, nr_resnet=2, nr_logistic_mix=3))
    state = reference_layout(model)
    assert set(REFERENCE_KEYS) <= set(state)
    assert not any("parametrizations" in k for k in state)
    converted = convert_pixelcnn_pp.convert(state)
    assert (converted.config.nr_resnet, converted.config.nr_filters, converted.config.nr_logistic_mix) == (2, 8, 3)
    x = model.example_batch(2)
    torch.testing.assert_close(converted.log_prob(x), model.log_prob(x))
    converted.save_pretrained(tmp_path / "converted")
    reloaded = zoo.load(f"local-dir:{tmp_path / 'converted'}")
    torch.testing.assert_close(reloaded.log_prob(x), model.log_prob(x))
    # Without the DataParallel prefix too; a foreign key is refused rather than dropped.
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    torch.testing.assert_close(convert_pixelcnn_pp.convert(plain).log_prob(x), model.log_prob(x))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        convert_pixelcnn_pp.convert({**plain, "extra.weight": torch.zeros(1)})


def test_command_line_completes_and_scores_an_rgb_png(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from zoo.cli import main

    model = random_model(**TINY)
    model.save_pretrained(tmp_path / "model")
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    name = f"local-dir:{tmp_path / 'model'}"
    assert main(["complete", name, "--input", str(tmp_path / "in.png"), "--rows", "3", "-n", "2", "-o", str(tmp_path / "out.png")]) == 0
    assert main(["score", name, "--input", str(tmp_path / "in.png")]) == 0
    nats = float(capsys.readouterr().out.split("\t")[1].split()[0])
    negative_log_likelihood = -model.log_prob(torch.from_numpy(pixels).permute(2, 0, 1)).item()
    assert abs(nats - negative_log_likelihood) < 1e-2
    with Image.open(tmp_path / "out.png") as grid:
        assert grid.mode == "RGB"


@pytest.mark.parametrize("family, overrides", [
    ("pixelcnn", dict(height=5, width=5, hidden=12, n_residual=1, input_kernel=3, output_hidden=12)),
    ("gated-pixelcnn", dict(height=5, width=5, channels=3, levels=256, hidden=12, n_layers=2, kernel=3, input_kernel=3,
                            output_hidden=12, labels=["a", "b"])),
    ("pixelcnn++", dict(TINY, labels=["cat", "dog"])),
])
def test_sampling_from_nothing_computes_only_what_depends_on_no_pixel(family, overrides):
    """From an empty image the cache skips the full forward: it computes only the positions that depend on no pixel
    (the first pixel's parameters among them), and they equal the full forward's, in every activation."""
    torch.manual_seed(0)
    model = randomized(zoo.build(family, None, **overrides))
    levels = torch.zeros((2, *model.space.shape), dtype=torch.long)
    cond = torch.tensor([0, 1])
    with torch.no_grad():
        cache = model.incremental_cache(levels, cond, 0)
        full = run_graph(cache.ops, cache.acts["input"])
        deps = dependency_maps(cache.ops, full, cache.draws, cache.geometry)
        for name, act in full.items():
            for g in range(cache.draws):
                alone = deps[name][g] < 0
                channels = cache.channels[name, g]
                torch.testing.assert_close(cache.acts[name][:, channels][:, :, alone], act[:, channels][:, :, alone], rtol=1e-5, atol=1e-6,
                                           msg=f"{family}: {name}, colour group {g}")
        assert deps[OUTPUT][0, 0, 0] < 0  # the first pixel's (first channel's) parameters came from this computation
