"""Helpers shared by the tests: random (non-trivial) weights, gradient-based dependency maps, the tools/ scripts."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import torch

import zoo
from zoo import conformance


def load_tool(name: str) -> ModuleType:
    """``tools/NAME.py`` as a module: the maintainer scripts beside the package are not importable from it."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent.parent / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomized(model: zoo.AutoregressiveModel, open_relus: bool = False) -> zoo.AutoregressiveModel:
    """``zoo.conformance.randomized`` (N(0, 0.3) weights, eval mode); ``open_relus`` then shifts biases up so that no
    ReLU is dead everywhere (a dead one would hide a dependency)."""
    conformance.randomized(model)
    if open_relus:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.add_(2.0)
    return model


def input_dependencies(model: zoo.AutoregressiveModel, cond: torch.Tensor | None = None):
    """For each output dim of an image model, the input dims with a non-zero gradient.

    Returns ``(dims, seen)``: every ``(row, col, channel)`` in raster-then-channel order, and for
    each the set of input dims its output parameters depend on (``forward`` returns ``[N, P, H, W]``,
    per-channel distributions in channel-major blocks ``P = C * K``; a joint distribution's channels
    all share the pixel's whole block).
    """
    c, h, w = model.space.shape
    x = torch.randn(1, c, h, w, requires_grad=True)
    params = model(x, cond) if cond is not None else model(x)  # [1, P, H, W]
    # Per-channel distributions: channel-major blocks of P // C parameters; a joint one: the whole pixel's P.
    joint = model.distribution.joint
    block = params.shape[1] if joint else params.shape[1] // c
    dims = list(itertools.product(range(h), range(w), range(c)))
    seen = {}
    for r, col, ch in dims:
        lo = 0 if joint else ch * block
        (grad,) = torch.autograd.grad(params[0, lo : lo + block, r, col].sum(), x, retain_graph=True)
        seen[(r, col, ch)] = {(r2, c2, ch2) for r2, c2, ch2 in dims if grad[0, ch2, r2, c2] != 0}
    return dims, seen
