from __future__ import annotations

import pytest
import torch

import zoo
import zoo.registry as registry

from .helpers import randomized

# The tests use tiny models, for which one thread is fastest; more threads than free cores make
# OpenMP spin-waits 100x slower whenever anything else runs on the machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_pixelcnn(**overrides):
    """A few-thousand-parameter PixelCNN with randomised (non-trivial) weights."""
    return randomized(zoo.build("pixelcnn", "tiny", **overrides))


@pytest.fixture
def tiny_binary():
    return tiny_pixelcnn()


@pytest.fixture
def tiny_folder(tmp_path, tiny_binary):
    folder = tmp_path / "tiny"
    tiny_binary.save_pretrained(folder)
    return folder


@pytest.fixture
def isolated_registry(monkeypatch):
    """A registry with the built-in families and no entries, swapped in for the test's duration."""
    registry.REGISTRY.ensure_loaded()
    reg = registry.Registry()
    reg.families = dict(registry.REGISTRY.families)
    reg._loaded = True
    monkeypatch.setattr(registry, "REGISTRY", reg)
    return reg
