"""Families (architectures) and entries (pretrained checkpoints), and the names that reach them.

Families register from code with :func:`register_family`. Entries are data: one JSON file per
family in ``registry/`` plus each entry's ``hub_configs/<name>/config.json``, both shipped in the
wheel. Third-party distributions add either through the ``zoo.plugins`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownModelError

PLUGIN_GROUP = "zoo.plugins"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
BUILTIN_FAMILY_MODULES = (
    "zoo.models.pixelcnn",
    "zoo.models.pixelcnn_pp",
    "zoo.models.gated_pixelcnn",
    "zoo.models.pixelrnn",
    "zoo.models.wavenet",
    "zoo.models.char_transformer",
    "zoo.models.char_lstm",
)


class ZooDeprecationWarning(FutureWarning):
    """A renamed model name was used; it still loads. Shown to end users by default."""


@dataclass(frozen=True)
class Family:
    name: str
    cls: type
    config: type
    modality: str
    presets: dict[str, dict[str, Any]]

    def make_config(self, preset: str | None = None, **overrides: Any) -> Any:
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in self.presets:
                raise ConfigError(f"family {self.name!r} has no preset {preset!r}; presets: {sorted(self.presets)}")
            values.update(self.presets[preset])
        values.update(overrides)
        accepted = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(values) - accepted)
        if unknown:
            raise ConfigError(f"unknown {self.name} config field(s) {unknown}; accepted: {sorted(accepted)}")
        return self.config(**values)


@dataclass
class Entry:
    """A pretrained checkpoint: where its weights are, and what was measured of it."""

    name: str
    family: str
    config: dict[str, Any]
    hub_repo: str | None = None
    revision: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    bundled: bool = False
    dataset: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    license: str | None = None
    paper: str | None = None
    recipe: str | None = None
    status: str = "available"  # "available" | "unpublished"
    aliases: list[str] = field(default_factory=list)
    deprecated_names: list[str] = field(default_factory=list)
    description: str = ""
    local_dir: Path | None = None  # folder in the checkpoint format shipped with the package

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["local_dir"] = str(self.local_dir) if self.local_dir else None
        return d


class Registry:
    """The process-wide catalogue. Built-ins, registry data and plugins load lazily on first use."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.entries: dict[str, Entry] = {}
        self.aliases: dict[str, str] = {}
        self.deprecated: dict[str, str] = {}
        self._loaded = False

    # ---- loading
    def ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in BUILTIN_FAMILY_MODULES:
            importlib.import_module(module)
        for path in sorted(data_dir("registry").glob("*.json")):
            for raw in json.loads(path.read_text())["entries"]:
                self.add_entry(entry_from_data(raw))
        for ep in metadata.entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must never break `import zoo`
                warnings.warn(f"zoo plugin {ep.name!r} ({ep.value}) failed to load and was skipped: {exc!r}", stacklevel=2)

    def add_family(self, family: Family) -> None:
        if family.name in self.families and self.families[family.name].cls is not family.cls:
            raise ConfigError(f"family {family.name!r} is already registered by {self.families[family.name].cls.__module__}")
        self.families[family.name] = family

    def add_entry(self, entry: Entry) -> None:
        for name in (entry.name, *entry.aliases, *entry.deprecated_names):
            if not NAME_PATTERN.match(name):
                raise ConfigError(f"invalid model name {name!r}: use lowercase letters, digits and + . _ -")
            if name in self.entries or name in self.aliases or name in self.deprecated:
                raise ConfigError(f"model name {name!r} is already registered")
        self.entries[entry.name] = entry
        self.aliases.update(dict.fromkeys(entry.aliases, entry.name))
        self.deprecated.update(dict.fromkeys(entry.deprecated_names, entry.name))

    # ---- lookup
    def family(self, name: str) -> Family:
        self.ensure_loaded()
        if name not in self.families:
            raise UnknownModelError(f"unknown family {name!r}{_suggest(name, self.families)}; known families: {sorted(self.families)}")
        return self.families[name]

    def entry(self, name: str) -> Entry:
        self.ensure_loaded()
        if name in self.aliases:
            return self.entries[self.aliases[name]]
        if name in self.deprecated:
            new = self.deprecated[name]
            warnings.warn(f"model name {name!r} is deprecated; use {new!r}", ZooDeprecationWarning, stacklevel=3)
            return self.entries[new]
        if name in self.entries:
            return self.entries[name]
        known = [*self.entries, *self.aliases]
        raise UnknownModelError(f"unknown model {name!r}{_suggest(name, known)}; `zoo list` shows every name")


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


REGISTRY = Registry()


def data_dir(kind: str) -> Path:
    """``registry/`` or ``hub_configs/``: inside the installed wheel, or at the source checkout's root."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / kind, package.parent / kind):
        if candidate.is_dir():
            return candidate
    return package / "_data" / kind


def entry_from_data(raw: dict[str, Any]) -> Entry:
    """An entry from its registry JSON record; its config comes from ``hub_configs/<name>/config.json``."""
    raw = dict(raw)
    folder = data_dir("hub_configs") / raw["name"]
    config_file = folder / "config.json"
    if "config" not in raw:
        if not config_file.is_file():
            raise ConfigError(f"registry entry {raw['name']!r} has no config and {config_file} is missing")
        checkpoint_config = json.loads(config_file.read_text())
        raw["config"] = checkpoint_config["config"]
        raw.setdefault("family", checkpoint_config["family"])
    fields = {f.name for f in dataclasses.fields(Entry)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"registry entry {raw.get('name')!r} has unknown field(s) {unknown}")
    entry = Entry(**raw)
    if folder.is_dir():
        entry.local_dir = folder
    return entry


# --------------------------------------------------------------------------- public functions
def register_family(
    name: str, *, config: type, presets: dict[str, dict[str, Any]] | None = None, modality: str | None = None
) -> Callable[[type], type]:
    """Class decorator: make a model class buildable as ``zoo.build(name, ...)``."""

    def wrap(cls: type) -> type:
        cls.family = name  # the one place a family's name is written
        REGISTRY.add_family(Family(name, cls, config, modality or cls.modality, dict(presets or {})))
        return cls

    return wrap


def register_entry(entry: Entry) -> Entry:
    """Add a pretrained entry (plugins call this; built-in entries come from ``registry/``)."""
    REGISTRY.ensure_loaded()
    REGISTRY.family(entry.family)
    REGISTRY.add_entry(entry)
    return entry


def build(family: str, preset: str | None = None, **config: Any) -> Any:
    """An untrained model of ``family``, from an optional named preset plus field overrides."""
    fam = REGISTRY.family(family)
    model = fam.cls(fam.make_config(preset, **config))
    return model


def list_families() -> list[str]:
    REGISTRY.ensure_loaded()
    return sorted(REGISTRY.families)


def list_models(
    pattern: str = "*", *, modality: str | None = None, family: str | None = None, pretrained: bool | None = None
) -> list[str]:
    """Registered model names matching an fnmatch ``pattern``, optionally filtered.

    ``pretrained=True`` keeps entries whose weights are published; ``False`` those that are not.
    """
    REGISTRY.ensure_loaded()

    def keep(e: Entry) -> Iterator[bool]:
        yield fnmatch.fnmatchcase(e.name, pattern) or any(fnmatch.fnmatchcase(a, pattern) for a in e.aliases)
        yield family is None or e.family == family
        yield modality is None or REGISTRY.families[e.family].modality == modality
        yield pretrained is None or (e.status == "available") == pretrained

    return sorted(e.name for e in REGISTRY.entries.values() if all(keep(e)))


def model_info(name: str) -> dict[str, Any]:
    """The entry of ``name`` (or an alias) with its family, modality and metadata, as a plain dict."""
    entry = REGISTRY.entry(name)
    info = entry.to_dict()
    family = REGISTRY.families[entry.family]
    info["modality"] = family.modality
    info.update(getattr(family.cls, "info_from_config", lambda config: {})(entry.config))  # e.g. WaveNet's receptive field
    return info


def resolve_entry(name: str) -> Entry:
    """The entry a name or alias refers to (a deprecated name warns and still resolves)."""
    return REGISTRY.entry(name)


def all_entries() -> list[Entry]:
    """Every registered entry (built-in, registry data and plugins)."""
    REGISTRY.ensure_loaded()
    return list(REGISTRY.entries.values())
