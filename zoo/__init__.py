"""zoo: pretrained autoregressive generative models for images, audio and text."""

from .api import AutoregressiveModel, ImageModel, TextModel
from .errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    InvalidInputError,
    UnknownModelError,
    WeightsUnavailableError,
    ZooError,
)
from .hf import publish
from .hub import load, save_pretrained
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

__version__ = "0.1.0"

__all__ = [
    "AutoregressiveModel",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "Entry",
    "ImageModel",
    "TextModel",
    "InvalidInputError",
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
