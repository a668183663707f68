"""The conformance checks every family must pass: the contract's properties, as plain assertions.

``tests/test_contract.py`` runs them over every registered family; a plugin author runs the same
checks on theirs with one call::

    from zoo.conformance import check_family
    check_family("my-family", "tiny")          # or one check at a time: check_causal_by_perturbation(model), ...

Each check takes a model (small: a ``tiny`` preset) with non-trivial random weights.
"""

from __future__ import annotations

import copy
import itertools
import math
import tempfile
from typing import Any

import torch

from .audio import AudioModel
from .contract import AutoregressiveModel
from .errors import InvalidInputError
from .hub import load
from .image import ImageModel
from .registry import build
from .text import TextModel

__all__ = ["CHECKS", "check_bf16_close", "check_causal_by_gradient", "check_causal_by_perturbation", "check_complete_keeps_known",
           "check_conditionals_normalised", "check_family", "check_fast_equals_naive", "check_joint_normalised", "check_leaves_no_process_state",
           "check_refuses_bad_input",
           "check_round_trip", "example", "randomized", "variants"]


def randomized(model: AutoregressiveModel, scale: float = 0.3) -> AutoregressiveModel:
    """``model`` with N(0, scale) weights, far from initialisation so every path carries signal, in eval mode."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, scale)
    return model.eval()


def variants(family: str, preset: str = "tiny") -> list[dict[str, Any]]:
    """Config overrides to check: the preset itself, and a class/speaker-conditional version where the family has one."""
    out: list[dict[str, Any]] = [{}]
    try:
        if not build(family, preset).labels:
            build(family, preset, labels=["a", "b"])
            out.append({"labels": ["a", "b"]})
    except Exception:  # the family has no labels field, or refuses labels: unconditional only
        pass
    return out


def _condition(model: AutoregressiveModel, n: int) -> torch.Tensor | None:
    return torch.arange(n) % model.num_conditions if model.num_conditions else None


def example(model: AutoregressiveModel, n: int = 2, length: int = 12, seed: int = 0) -> Any:
    """``n`` valid random examples in the model's natural form (audio and text of ``length`` steps)."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, ImageModel):
        return torch.randint(0, model.space.levels, (n, *model.space.shape), generator=g, dtype=torch.long).to(torch.uint8)
    if isinstance(model, AudioModel):
        return model.space.decode(torch.randint(0, model.space.levels, (n, length), generator=g))
    if isinstance(model, TextModel):
        return [model.space.decode(torch.randint(0, model.space.size, (length,), generator=g)) for _ in range(n)]
    raise TypeError(f"no example for modality {model.modality!r}")


def _codes(model: AutoregressiveModel, x: Any) -> torch.Tensor:
    """Integer values ``[N, D]`` in generation order (images: raster, then channel)."""
    if isinstance(model, ImageModel):
        return x.long().permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    if isinstance(model, AudioModel):
        return model.space.encode(x)
    return torch.stack([model.space.encode(t) for t in x])


def _decode(model: AutoregressiveModel, codes: torch.Tensor, like: Any) -> Any:
    if isinstance(model, ImageModel):
        c, h, w = model.space.shape
        return codes.view(-1, h, w, c).permute(0, 3, 1, 2).to(torch.uint8)
    if isinstance(model, AudioModel):
        return model.space.decode(codes)
    return [model.space.decode(row) for row in codes]


def _per_dim(model: AutoregressiveModel, x: Any, cond: Any) -> torch.Tensor:
    """``log p(x_t | x_<t)`` ``[N, D]`` in generation order."""
    lp = model.log_prob(x, condition=cond, per_dim=True)
    return lp.permute(0, 2, 3, 1).reshape(lp.shape[0], -1) if isinstance(model, ImageModel) else lp


def _levels(model: AutoregressiveModel) -> int:
    return model.space.levels if not isinstance(model, TextModel) else model.space.size


def check_causal_by_perturbation(model: AutoregressiveModel, dims: int = 16) -> None:
    """Changing dimension s leaves ``log p(x_t | x_<t)`` unchanged for every t < s (and changes something at or after s)."""
    x = example(model, 1)
    cond = _condition(model, 1)
    codes = _codes(model, x)
    base = _per_dim(model, x, cond)
    total = codes.shape[1]
    for s in sorted({round(i * (total - 1) / max(1, dims - 1)) for i in range(dims)}):
        changed = codes.clone()
        changed[0, s] = (changed[0, s] + 1) % _levels(model)
        lp = _per_dim(model, _decode(model, changed, x), cond)
        torch.testing.assert_close(lp[:, :s], base[:, :s], rtol=1e-5, atol=1e-5, equal_nan=True,
                                   msg=lambda m, s=s: f"{model.family}: changing dimension {s} changed an earlier one: {m}")


def check_causal_by_gradient(model: AutoregressiveModel) -> None:
    """Image families: the parameters of each dimension have zero gradient with respect to that dimension and every later one."""
    if not isinstance(model, ImageModel):
        return
    c, h, w = model.space.shape
    x = torch.randn(1, c, h, w, requires_grad=True)
    params = model(x, _condition(model, 1))
    per_channel = model.distribution.num_params // (1 if model.distribution.joint else c)
    for r, col in itertools.product(range(h), range(w)):
        for ch in range(1 if model.distribution.joint else c):
            block = params[0, ch * per_channel : (ch + 1) * per_channel, r, col]
            (grad,) = torch.autograd.grad(block.sum(), x, retain_graph=True)
            seen = grad[0].permute(1, 2, 0).reshape(-1) != 0  # raster, then channel
            first_unseen = (r * w + col) * c + (0 if model.distribution.joint else ch)
            assert not bool(seen[first_unseen:].any()), f"{model.family}: pixel ({r}, {col}) channel {ch} sees itself or the future"


def check_conditionals_normalised(model: AutoregressiveModel, positions: int = 3) -> None:
    """For a few dimensions t: the probabilities of every value of x_t, the rest fixed, sum to one."""
    x = example(model, 1)
    codes = _codes(model, x)
    k = _levels(model)
    values = torch.arange(k)
    for t in sorted({0, codes.shape[1] // 2, codes.shape[1] - 1})[:positions]:
        batch = codes.repeat(k, 1)
        batch[:, t] = values
        lp = _per_dim(model, _decode(model, batch, x), _condition(model, k) * 0 if model.num_conditions else None)[:, t]
        if not bool(torch.isnan(lp).all()):
            total = torch.logsumexp(lp.double(), 0)
            assert abs(float(total)) < 1e-4, f"{model.family}: p(x_{t} | x_<{t}) sums to {math.exp(total):.6f}, not 1"


def check_joint_normalised(model: AutoregressiveModel, max_outcomes: int = 1 << 16) -> None:
    """Where the data space is small enough to enumerate (tiny binary images, 2-step clips and texts): the total is one."""
    if isinstance(model, ImageModel):
        dims, k = model.space.dims, model.space.levels
    else:
        dims, k = 2, _levels(model)
    if k**dims > max_outcomes:
        return
    grid = torch.tensor(list(itertools.product(range(k), repeat=dims)))
    x = _decode(model, grid, None)
    cond = torch.zeros(len(grid), dtype=torch.long) if model.num_conditions else None
    lp = model.log_prob(x, condition=cond).double()
    if isinstance(model, TextModel) and model.space.bos is None:
        return  # the first token is not modelled
    assert abs(float(torch.logsumexp(lp, 0))) < 1e-4, f"{model.family}: probabilities of all {len(grid)} outcomes sum to {lp.exp().sum():.6f}"


def _sample(model: AutoregressiveModel, n: int, naive: bool, seed: int = 0) -> Any:
    g = torch.Generator().manual_seed(seed)
    cond = _condition(model, n)
    if isinstance(model, ImageModel):
        return model.sample(n, condition=cond, generator=g, naive=naive)
    if isinstance(model, AudioModel):
        return model.sample(n, samples=40, condition=cond, generator=g, naive=naive)
    return model.sample(n, max_new_chars=30, generator=g, naive=naive)


def check_fast_equals_naive(model: AutoregressiveModel) -> None:
    """The cached sampler draws exactly what a full forward per step draws, under one seed."""
    fast, naive = _sample(model, 3, False), _sample(model, 3, True)
    same = torch.equal(fast, naive) if isinstance(fast, torch.Tensor) else fast == naive
    assert same, f"{model.family}: cached sampling differs from the naive path under the same seed"
    again = _sample(model, 3, False)
    assert torch.equal(fast, again) if isinstance(fast, torch.Tensor) else fast == again, f"{model.family}: sampling is not seeded"


def check_complete_keeps_known(model: AutoregressiveModel) -> None:
    """``complete`` returns the known part bit-identical, and the cached and naive completions agree."""
    x = example(model, 2)
    cond = _condition(model, 2)
    runs = []
    for naive in (False, True):
        g = torch.Generator().manual_seed(1)
        if isinstance(model, ImageModel):
            rows = model.space.height // 2
            out = model.complete(x, rows=rows, condition=cond, generator=g, naive=naive)
            assert torch.equal(out[:, :, :rows], x[:, :, :rows]), f"{model.family}: complete changed the known rows"
        elif isinstance(model, AudioModel):
            out = model.complete(x, samples=10, condition=cond, generator=g, naive=naive)
            assert torch.equal(out[:, : x.shape[1]], x), f"{model.family}: complete changed the prefix"
        else:
            out = model.complete(x, max_new_chars=10, generator=g, naive=naive)
            assert all(o.startswith(p) for o, p in zip(out, x, strict=True)), f"{model.family}: complete changed the prompt"
        runs.append(out)
    same = torch.equal(*runs) if isinstance(runs[0], torch.Tensor) else runs[0] == runs[1]
    assert same, f"{model.family}: cached and naive completions differ"


def check_round_trip(model: AutoregressiveModel) -> None:
    """``save_pretrained`` then ``zoo.load('local-dir:...')`` gives the same weights and the same log-likelihoods."""
    x = example(model, 2)
    cond = _condition(model, 2)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(f"{tmp}/checkpoint")
        loaded = load(f"local-dir:{tmp}/checkpoint")
    assert type(loaded) is type(model) and loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), f"{model.family}: {key} changed in the round trip"
    torch.testing.assert_close(loaded.log_prob(x, condition=cond), model.log_prob(x, condition=cond), rtol=0, atol=0)


def check_refuses_bad_input(model: AutoregressiveModel) -> None:
    """The shared bad inputs raise InvalidInputError (a ZooError) naming what is wrong."""
    cond = _condition(model, 1)
    calls = [
        ("n", lambda: model.sample(0, condition=cond)),
        ("n", lambda: model.sample(True, condition=cond)),
        ("temperature", lambda: _sample_with(model, cond, temperature=0.0)),
        ("temperature", lambda: _sample_with(model, cond, temperature="hot")),
        ("condition", lambda: model.log_prob(example(model, 1), condition=3.7 if model.num_conditions else "x")),
    ]
    if model.num_conditions:
        calls.append(("condition", lambda: model.log_prob(example(model, 1), condition=None)))
        calls.append(("condition", lambda: model.log_prob(example(model, 1), condition=[None])))
    for name, call in calls:
        try:
            call()
        except InvalidInputError as exc:
            assert name in str(exc), f"{model.family}: the error {exc!r} does not name {name!r}"
        else:
            raise AssertionError(f"{model.family}: a bad {name} was accepted")
    for bad in (None, 3, "x" if not isinstance(model, TextModel) else [3]):
        try:
            model.log_prob(bad)
        except InvalidInputError:
            pass
        else:
            raise AssertionError(f"{model.family}: log_prob({bad!r}) was accepted")


def _sample_with(model: AutoregressiveModel, cond: Any, **options: Any) -> Any:
    if isinstance(model, AudioModel):
        return model.sample(1, samples=4, condition=cond, **options)
    if isinstance(model, TextModel):
        return model.sample(1, max_new_chars=4, **options)
    return model.sample(1, condition=cond, **options)


def check_bf16_close(model: AutoregressiveModel) -> None:
    """Scoring in bfloat16 stays close to float32 (likelihoods are reported in float32; bf16 is a speed option)."""
    x = example(model, 2)
    cond = _condition(model, 2)
    reference = model.log_prob(x, condition=cond)
    half = copy.deepcopy(model).to(torch.bfloat16)
    lp = half.log_prob(x, condition=cond)
    assert lp.dtype == torch.float32, f"{model.family}: bf16 scoring must still return float32 nats"
    torch.testing.assert_close(lp, reference, rtol=0.05, atol=1.0)


def check_leaves_no_process_state(model: AutoregressiveModel) -> None:
    """After scoring and sampling return, the thread count and the oneDNN switch are what they were (CPU tricks stay inside calls)."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(2)
    try:
        _sample(model, 2, False)
        model.log_prob(example(model, 2), condition=_condition(model, 2))
        assert torch.get_num_threads() == 2, f"{model.family}: a call left the thread count at {torch.get_num_threads()}"
        assert torch.backends.mkldnn.enabled == mkldnn, f"{model.family}: a call changed torch.backends.mkldnn.enabled"
    finally:
        torch.set_num_threads(threads)


CHECKS = (check_causal_by_perturbation, check_causal_by_gradient, check_conditionals_normalised, check_joint_normalised,
          check_fast_equals_naive, check_complete_keeps_known, check_round_trip, check_refuses_bad_input, check_bf16_close,
          check_leaves_no_process_state)


def check_family(family: str, preset: str = "tiny", **overrides: Any) -> None:
    """Run every check on ``family`` (its ``preset`` and, where it has one, a conditional variant) with random weights."""
    for extra in variants(family, preset):
        torch.manual_seed(0)
        model = randomized(build(family, preset, **{**extra, **overrides}))
        for check in CHECKS:
            check(model)
