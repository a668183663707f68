"""Families (architectures) and entries (pretrained checkpoints), and the names that reach them.

Families register from code with :func:`register_family`. Entries are data, shipped in the wheel,
with one source for each fact: ``hub_configs/<name>/`` holds the checkpoint's own files (its
``config.json`` says the family and config, ``recipe.json`` how it was trained, ``README.md`` the
card); ``registry/*.json`` holds only what those files cannot say (Hub repo, revision, weights
file and sha256, metrics, status, names, license). Third-party distributions add either through
the ``zoo.plugins`` entry-point group.

Listing and describing entries reads the data only: the built-in families' modules (and torch)
are imported the first time a family itself is needed (``build``, ``load``, ``list_families``).
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

__all__ = [
    "BUILTIN_FAMILIES",
    "PLUGIN_GROUP",
    "REGISTRY",
    "Entry",
    "Family",
    "Registry",
    "ZooDeprecationWarning",
    "all_entries",
    "build",
    "data_dir",
    "entry_from_data",
    "family_class",
    "list_families",
    "list_models",
    "model_info",
    "read_folder_config",
    "read_registry_file",
    "register_entry",
    "register_family",
    "resolve_entry",
    "valid_repo_id",
]

PLUGIN_GROUP = "zoo.plugins"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
_PART = r"[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?"
REPO_ID_PATTERN = re.compile(rf"{_PART}/{_PART}")
# Built-in family -> (module that registers it, modality): listing needs the modality, not the module.
BUILTIN_FAMILIES: dict[str, tuple[str, str]] = {
    "pixelcnn": ("zoo.models.pixelcnn", "image"),
    "pixelcnn++": ("zoo.models.pixelcnn_pp", "image"),
    "gated-pixelcnn": ("zoo.models.gated_pixelcnn", "image"),
    "pixelrnn": ("zoo.models.pixelrnn", "image"),
    "wavenet": ("zoo.models.wavenet", "audio"),
    "char-transformer": ("zoo.models.char_transformer", "text"),
    "char-lstm": ("zoo.models.char_lstm", "text"),
    "gpt2": ("zoo.models.gpt2", "text"),
}
BUILTIN_FAMILY_MODULES = tuple(dict.fromkeys(module for module, _ in BUILTIN_FAMILIES.values()))
# Facts the checkpoint folder states; a registry record repeating them would be a second source.
FOLDER_FIELDS = ("family", "config", "recipe", "local_dir")


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
    # ``recipe`` is the path of ``local_dir/recipe.json`` for built-in entries (derived, never stored
    # in registry/); ``revision`` None means "the repo's main branch": nothing is pinned until a
    # publish records the commit it made.

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
        self._loaded = False  # everything: data, plugins and the built-in families' modules
        self._data_loaded = False  # registry data and plugins (no family module imported)

    # ---- loading
    def ensure_loaded(self) -> None:
        if self._loaded:
            return
        self.ensure_data()
        self._loaded = True
        for module in BUILTIN_FAMILY_MODULES:
            importlib.import_module(module)

    def ensure_data(self) -> None:
        """Entries from ``registry/`` and plugins: enough to list and describe, without torch."""
        if self._data_loaded or self._loaded:
            return
        self._data_loaded = True
        for path in sorted(data_dir("registry").glob("*.json")):
            for raw in read_registry_file(path):
                self.add_entry(entry_from_data(raw))
        for ep in metadata.entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must never break `import zoo`
                warnings.warn(f"zoo plugin {ep.name!r} ({ep.value}) failed to load and was skipped: {exc!r}", stacklevel=2)

    def modality(self, family: str) -> str | None:
        if family in self.families:
            return self.families[family].modality
        return BUILTIN_FAMILIES[family][1] if family in BUILTIN_FAMILIES else None

    def add_family(self, family: Family) -> None:
        if family.name in self.families and self.families[family.name].cls is not family.cls:
            raise ConfigError(f"family {family.name!r} is already registered by {self.families[family.name].cls.__module__}")
        self.families[family.name] = family

    def add_entry(self, entry: Entry) -> None:
        if entry.hub_repo is not None and not valid_repo_id(entry.hub_repo):
            raise ConfigError(f"entry {entry.name!r} names Hub repo {entry.hub_repo!r}, which is not a valid repo id "
                              "(org/name of letters, digits, - _ . ; no '--' or '..'; at most 96 characters)")
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
        self.ensure_data()
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


def read_registry_file(path: Path) -> list[dict[str, Any]]:
    """The entry records of one ``registry/*.json`` file (``{"entries": [...]}``).

    The old layout's repeated facts (a top-level ``family``, per-entry ``family``/``recipe``) are
    still read, but only where they agree with ``hub_configs/``; tests/test_registry.py keeps the
    shipped files free of them.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"registry file {path} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or set(data) - {"entries", "family"}:
        raise ConfigError(f"registry file {path} must be an object with one key, 'entries' (a list of records)")
    records = []
    for raw in data["entries"]:
        if isinstance(raw, dict) and isinstance(raw.get("name"), str) and set(raw) & {"family", "recipe"}:
            raw = dict(raw)
            family, _ = read_folder_config(data_dir("hub_configs") / raw["name"])
            if raw.pop("family", family) != family or raw.pop("recipe", None) not in (None, f"hub_configs/{raw['name']}/recipe.json"):
                raise ConfigError(f"registry entry {raw['name']!r} in {path} disagrees with hub_configs/{raw['name']}/ "
                                  "(family and recipe are read from there only)")
        records.append(raw)
    return records


def read_folder_config(folder: Path) -> tuple[str, dict[str, Any]]:
    """``(family, config)`` of a catalogue folder's ``config.json``, the one place they are written."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"registry entry {folder.name!r} has no {path}; its family and config are read from there") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("family"), str) or not isinstance(raw.get("config"), dict):
        raise ConfigError(f"{path} must be an object with 'family' (a str) and 'config' (an object)")
    return raw["family"], raw["config"]


def entry_from_data(raw: dict[str, Any]) -> Entry:
    """An entry from its registry record plus ``hub_configs/<name>/`` (family, config, recipe)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"a registry record must be an object with a 'name'; got {raw!r:.80}")
    repeated = sorted(set(raw) & set(FOLDER_FIELDS))
    if repeated:
        raise ConfigError(f"registry entry {raw['name']!r} repeats {repeated}: those are read from hub_configs/{raw['name']}/ only")
    fields = {f.name for f in dataclasses.fields(Entry)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"registry entry {raw['name']!r} has unknown field(s) {unknown}; accepted: {sorted(fields - set(FOLDER_FIELDS))}")
    folder = data_dir("hub_configs") / raw["name"]
    family, config = read_folder_config(folder)
    recipe = folder / "recipe.json"
    entry = Entry(**raw, family=family, config=config, recipe=str(recipe) if recipe.is_file() else None)
    entry.local_dir = folder
    return entry


def valid_repo_id(repo_id: Any) -> bool:
    """Whether ``repo_id`` is ``org/name`` as the Hub accepts it (huggingface_hub's rules, checked without importing it)."""
    return (isinstance(repo_id, str) and len(repo_id) <= 96 and REPO_ID_PATTERN.fullmatch(repo_id) is not None
            and "--" not in repo_id and ".." not in repo_id)


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


def family_class(name: str) -> type:
    """The model class of family ``name`` (importing built-in and plugin families on first use)."""
    return REGISTRY.family(name).cls


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
    REGISTRY.ensure_data()

    def keep(e: Entry) -> Iterator[bool]:
        yield fnmatch.fnmatchcase(e.name, pattern) or any(fnmatch.fnmatchcase(a, pattern) for a in e.aliases)
        yield family is None or e.family == family
        yield modality is None or REGISTRY.modality(e.family) == modality
        yield pretrained is None or (e.status == "available") == pretrained

    return sorted(e.name for e in REGISTRY.entries.values() if all(keep(e)))


def model_info(name: str, *, derived: bool = True) -> dict[str, Any]:
    """The entry of ``name`` (or an alias) with its family, modality and metadata, as a plain dict.

    ``derived=True`` adds what the family computes from the config (e.g. WaveNet's receptive
    field), which imports the family's module; ``False`` reads the catalogue data only.
    """
    entry = REGISTRY.entry(name)
    info = entry.to_dict()
    info["modality"] = REGISTRY.modality(entry.family)
    if derived:
        family = REGISTRY.family(entry.family)
        info["modality"] = family.modality
        info.update(family.cls.info_from_config(entry.config))
    return info


def resolve_entry(name: str) -> Entry:
    """The entry a name or alias refers to (a deprecated name warns and still resolves)."""
    return REGISTRY.entry(name)


def all_entries() -> list[Entry]:
    """Every registered entry (built-in, registry data and plugins)."""
    REGISTRY.ensure_data()
    return list(REGISTRY.entries.values())
