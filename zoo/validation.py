"""Checks that families' config dataclasses run in ``__post_init__``, so a config that cannot be valid never builds.

Each raises :class:`zoo.ConfigError` naming the field, the value and what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import ConfigError

__all__ = ["check_choice", "check_labels", "check_odd", "check_positive", "check_range"]

MAX_SIZE = 1 << 20  # no dimension of a real model comes near this; larger values are typos or attacks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive(config: Any, *names: str, maximum: int = MAX_SIZE) -> None:
    """Each field is an int in 1..maximum."""
    for name in names:
        value = getattr(config, name)
        if not _is_int(value) or not 1 <= value <= maximum:
            raise ConfigError(f"{type(config).__name__}.{name} must be an int in 1..{maximum}, got {value!r}")


def check_odd(config: Any, *names: str) -> None:
    """Each field is a positive odd int (a kernel centred on its pixel)."""
    check_positive(config, *names, maximum=1023)
    for name in names:
        if getattr(config, name) % 2 == 0:
            raise ConfigError(f"{type(config).__name__}.{name} must be odd (a kernel centred on its pixel), got {getattr(config, name)}")


def check_choice(config: Any, name: str, accepted: Iterable[Any]) -> None:
    accepted = tuple(accepted)
    if getattr(config, name) not in accepted:
        raise ConfigError(f"{type(config).__name__}.{name} must be one of {list(accepted)}, got {getattr(config, name)!r}")


def check_range(config: Any, name: str, low: float, high: float) -> None:
    """A real number in [low, high]."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{type(config).__name__}.{name} must be a number in [{low}, {high}], got {value!r}")


def check_labels(config: Any, *, allowed: bool = True) -> None:
    """``labels`` is None or a list of distinct non-empty strings (class or speaker names); ``allowed=False``: must be empty."""
    labels = config.labels
    if labels is None:
        return
    where = f"{type(config).__name__}.labels"
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) and x for x in labels):
        raise ConfigError(f"{where} must be a list of names (str), e.g. ['0', '1'], or None; got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where} must be distinct, got {list(labels)}")
    if labels and not allowed:
        raise ConfigError(f"{where}: this family is unconditional; leave labels empty (None), got {list(labels)}")
