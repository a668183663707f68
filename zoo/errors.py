"""Exceptions raised by zoo.

Every error a user can trigger is a :class:`ZooError`, so callers (and the CLI) can catch one type.
The subclasses also derive from the builtin they refine, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "InvalidInputError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "ZooError",
]


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class UnknownModelError(ZooError, KeyError):
    """A model, family or alias name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(ZooError, ValueError):
    """Data handed to a model has the wrong shape, dtype, range or vocabulary."""


class ConfigError(ZooError, ValueError):
    """A family config, recipe or registry entry is malformed."""


class CheckpointError(ZooError, ValueError):
    """A checkpoint folder or weights file is missing, corrupt or does not match its config."""


class WeightsUnavailableError(ZooError, FileNotFoundError):
    """The weights of a registry entry cannot be had here (not published, or offline and not cached)."""


class DatasetError(ZooError, FileNotFoundError):
    """A dataset is missing or laid out differently from what its adapter expects."""
