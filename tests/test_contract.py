"""The conformance suite: every registered family (its tiny preset, conditional and unconditional where it has both)
passes the contract's shared properties, checked by ``zoo.conformance`` (plugins run the same with one call)."""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo import conformance

CASES = [pytest.param((family, extra), id=f"{family}{'-conditional' if extra else ''}")
         for family in zoo.list_families() for extra in conformance.variants(family)]


@pytest.fixture(params=CASES)
def model(request):
    family, extra = request.param
    torch.manual_seed(0)
    return conformance.randomized(zoo.build(family, "tiny", **extra))


@pytest.mark.parametrize("check", conformance.CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_family_conforms(model, check):
    check(model)


def test_every_builtin_family_is_covered():
    families = {case.values[0][0] for case in CASES}
    assert {"pixelcnn", "gated-pixelcnn", "pixelcnn++", "pixelrnn", "wavenet", "char-transformer", "char-lstm"} <= families
    assert any(case.values[0][1] for case in CASES), "no conditional variant is checked"


def test_a_broken_family_fails_the_suite():
    """The checks have teeth: a model that lets a pixel see itself is caught."""
    model = conformance.randomized(zoo.build("pixelcnn", "tiny"))
    model.input.mask.fill_(1.0)  # mask A opened: each pixel sees itself and everything after it in its window
    with pytest.raises(AssertionError):
        conformance.check_causal_by_gradient(model)
    with pytest.raises(AssertionError):
        conformance.check_causal_by_perturbation(model)


def test_the_readme_plugin_example_passes_the_suite(isolated_registry):
    """README's family example, run as written, passes every conformance check."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "my_package/zoo_plugin.py" in block)
    exec(compile(example, "README.md", "exec"), {})
    conformance.check_family("my-family", "tiny")
