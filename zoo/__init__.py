"""zoo: pretrained autoregressive generative models for images, audio and text.

The public names load on first use (PEP 562): ``import zoo`` is cheap, and torch is imported only
when something that needs it is touched (``zoo.load``, ``zoo.build``, the model classes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    InvalidInputError,
    UnknownModelError,
    WeightsUnavailableError,
    ZooError,
)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time these resolve through __getattr__
    from .audio import AudioModel
    from .checkpoint import save_pretrained
    from .contract import AutoregressiveModel
    from .hub import load
    from .image import ImageModel
    from .publishing import publish
    from .registry import (
        Entry,
        ZooDeprecationWarning,
        build,
        list_families,
        list_models,
        model_info,
        register_entry,
        register_family,
    )
    from .text import TextModel

__version__ = "0.1.0"

_LAZY = {
    "AudioModel": "audio",
    "AutoregressiveModel": "contract",
    "Entry": "registry",
    "ImageModel": "image",
    "TextModel": "text",
    "ZooDeprecationWarning": "registry",
    "build": "registry",
    "list_families": "registry",
    "list_models": "registry",
    "load": "hub",
    "model_info": "registry",
    "publish": "publishing",
    "register_entry": "registry",
    "register_family": "registry",
    "save_pretrained": "checkpoint",
}

__all__ = [
    "AudioModel",
    "AutoregressiveModel",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "Entry",
    "ImageModel",
    "InvalidInputError",
    "TextModel",
    "UnknownModelError",
    "WeightsUnavailableError",
    "ZooDeprecationWarning",
    "ZooError",
    "build",
    "list_families",
    "list_models",
    "load",
    "model_info",
    "publish",
    "register_entry",
    "register_family",
    "save_pretrained",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
