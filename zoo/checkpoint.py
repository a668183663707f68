"""Checkpoints: resolve a name -> find or download the files -> verify -> build and load.

The on-disk format is the same for a bundled checkpoint, a local folder and a Hub repo::

    config.json        {"family": ..., "config": {...}, "zoo_format": 1}
    model.safetensors  weights only (metadata: format=pt, family)
    README.md          the model card
    recipe.json        how it was trained (optional)

Weights are only ever read with safetensors; nothing downloaded is unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .cards import default_card
from .errors import CheckpointError, ConfigError, UnknownModelError
from .registry import build

ZOO_FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading
def read_checkpoint_config(path: Path) -> tuple[str, dict[str, Any]]:
    """``(family, config)`` from a checkpoint's config.json, with errors that name the file."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent} has no {CONFIG_NAME}; a zoo checkpoint folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or "family" not in raw or "config" not in raw:
        raise CheckpointError(f"{path} must be an object with 'family', 'config' and 'zoo_format' keys")
    fmt = raw.get("zoo_format")
    if fmt != ZOO_FORMAT:
        raise CheckpointError(f"{path} has zoo_format {fmt!r}; this version of zoo reads zoo_format {ZOO_FORMAT} (upgrade zoo for newer formats)")
    return raw["family"], raw["config"]


REFETCH = "delete the file and fetch it again"


def load_weights(model: torch.nn.Module, path: Path, *, family: str, sha256: str | None = None, remedy: str = REFETCH) -> None:
    """Load safetensors weights into ``model`` strictly, verifying the file's hash first when one is known."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise CheckpointError(
                f"sha256 mismatch for {path}: expected {sha256}, got {actual}; the file is corrupt or altered ({remedy})"
            )
    try:
        with safe_open(str(path), framework="pt") as f:
            stored_family = (f.metadata() or {}).get("family")
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    if stored_family is not None and stored_family != family:
        raise CheckpointError(f"{path} holds weights of family {stored_family!r} but its config says {family!r}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the {family} config: missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    wrong = [f"{k}: file {list(t.shape)} vs model {list(expected[k].shape)}" for k, t in tensors.items() if t.shape != expected[k].shape]
    if wrong:
        raise CheckpointError(f"{path} does not match the {family} config: shape mismatch {wrong[:5]}")
    model.load_state_dict(tensors)


def load_folder(folder: Path, *, sha256: str | None = None, expected_family: str | None = None, remedy: str = REFETCH) -> Any:
    family, config = read_checkpoint_config(folder / CONFIG_NAME)
    if expected_family is not None and family != expected_family:
        raise CheckpointError(f"{folder / CONFIG_NAME} says family {family!r}, but the registry entry is {expected_family!r}")
    try:
        model = build(family, **config)
    except UnknownModelError as exc:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {exc} (a plugin may provide it)") from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / CONFIG_NAME} has a config that family {family!r} rejects: {exc}") from None
    load_weights(model, folder / WEIGHTS_NAME, family=family, sha256=sha256, remedy=remedy)
    return model.eval()


# --------------------------------------------------------------------------- writing
def config_dict(model: Any) -> dict[str, Any]:
    config = model.config
    return {"family": model.family, "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
            "zoo_format": ZOO_FORMAT}


def save_pretrained(model: Any, directory: str | os.PathLike[str], *, recipe: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, card: str | None = None) -> Path:
    """Write ``model`` as a checkpoint folder, atomically: readers see the old folder or the new one, never half."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / CONFIG_NAME).write_text(json.dumps(config_dict(model), indent=2) + "\n")
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt", "family": model.family})
        if recipe is not None:
            (staging / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        if metrics is not None:
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "README.md").write_text(card if card is not None else default_card(model, recipe=recipe, metrics=metrics))
        for path in staging.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames only."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.rmdir(old)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
