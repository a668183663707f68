"""zoo: pretrained autoregressive generative models for images, audio and text."""

from .audio import AudioModel
from .checkpoint import save_pretrained
from .contract import AutoregressiveModel
from .errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    InvalidInputError,
    UnknownModelError,
    WeightsUnavailableError,
    ZooError,
)
from .hub import load, publish
from .image import ImageModel
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

__all__ = [
    "AudioModel",
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
