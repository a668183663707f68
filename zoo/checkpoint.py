"""The checkpoint folder format: read, verify, build (meta device first), load, save atomically. No network.

The on-disk format is the same for a bundled checkpoint, a local folder and a Hub repo::

    config.json        {"family": ..., "config": {...}, "zoo_format": 1}
    model.safetensors  weights only (metadata: format=pt, family)
    README.md          the model card
    recipe.json        how it was trained (optional)

Weights are only ever read with safetensors; nothing is unpickled. Before the network's memory is
allocated, the config is built on the meta device and compared with the weights file's header
(keys, shapes, dtypes), so a config that does not fit its weights fails fast with bounded memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.nn.modules import module as _module

from .cards import default_card
from .errors import CheckpointError, ConfigError, UnknownModelError
from .registry import build, family_class, list_families

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ZOO_FORMAT",
    "check_against_header",
    "config_dict",
    "load_folder",
    "load_weights",
    "pid_alive",
    "read_checkpoint_config",
    "read_header",
    "save_pretrained",
    "sha256_file",
]

ZOO_FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ZOO_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, "README.md", "recipe.json", "metrics.json", "tokenizer.json"})
REFETCH = "delete the file and fetch it again"
FLOAT_CODES = {"F16", "BF16", "F32", "F64"}
DTYPE_CODES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64", torch.int64: "I64",
               torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


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
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); a zoo config.json is UTF-8 JSON") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or "family" not in raw or "config" not in raw:
        raise CheckpointError(f"{path} must be an object with 'family', 'config' and 'zoo_format' keys")
    fmt = raw.get("zoo_format")
    if fmt != ZOO_FORMAT:
        raise CheckpointError(f"{path} has zoo_format {fmt!r}; this version of zoo reads zoo_format {ZOO_FORMAT} (upgrade zoo for newer formats)")
    if not isinstance(raw["family"], str) or not isinstance(raw["config"], dict):
        raise CheckpointError(f"{path}: 'family' must be a str and 'config' an object, got {type(raw['family']).__name__} "
                              f"and {type(raw['config']).__name__}")
    return raw["family"], raw["config"]


def read_header(path: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], dict[str, str]]:
    """``({key: (dtype code, shape)}, metadata)`` from a safetensors header, reading no tensor data."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118
            return header, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from None


def check_against_header(model: torch.nn.Module, header: dict[str, tuple[str, tuple[int, ...]]], *, path: Path, family: str) -> None:
    """The model's state dict (meta tensors are fine) has exactly the header's keys, shapes and dtype kinds."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match the {family} config: missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    wrong = [f"{k}: file {list(shape)} vs model {list(expected[k].shape)}" for k, (_, shape) in header.items()
             if shape != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(f"{path} does not match the {family} config: shape mismatch {wrong[:5]}")
    for k, (code, _) in header.items():
        want = DTYPE_CODES.get(expected[k].dtype, str(expected[k].dtype))
        if code != want and not (want in FLOAT_CODES and code in FLOAT_CODES):
            raise CheckpointError(f"{path} does not match the {family} config: {k} is {code} in the file, the model holds {want}")


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
    header, metadata = read_header(path)
    stored_family = metadata.get("family")
    if stored_family is not None and stored_family != family:
        raise CheckpointError(f"{path} holds weights of family {stored_family!r} but its config says {family!r}")
    check_against_header(model, header, path=path, family=family)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}") from None
    model.load_state_dict(tensors)


@contextlib.contextmanager
def _bounded_registrations(limit: int, path: Path) -> Iterator[None]:
    """Refuse a build that registers more parameters and buffers than ``limit``: a config of huge depth
    against a small weights file fails after ``limit`` registrations, not after exhausting memory."""
    count = 0

    def hook(*_: Any) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise CheckpointError(f"the config builds far more tensors than the {path.name} header holds; config and weights do not match")

    handles = [_module.register_module_parameter_registration_hook(hook), _module.register_module_buffer_registration_hook(hook)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _build(family: str, config: dict[str, Any], where: Path) -> Any:
    try:
        return build(family, **config)
    except UnknownModelError as exc:
        raise CheckpointError(f"{where}: {exc} (a plugin may provide it)") from None
    except CheckpointError:
        raise
    except (ConfigError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"{where} has a config that family {family!r} rejects: {exc}") from None


def load_folder(folder: Path, *, filename: str = WEIGHTS_NAME, sha256: str | None = None, expected_family: str | None = None,
                remedy: str = REFETCH) -> Any:
    """Build and load the checkpoint in ``folder``: its config is checked against the weights' header on
    the meta device first, and memory is allocated only for a network that the weights fit."""
    foreign = transformers_family(folder / CONFIG_NAME)
    if foreign is not None:  # a transformers-format folder: its family reads it
        if expected_family is not None and foreign.family != expected_family:
            raise CheckpointError(f"{folder / CONFIG_NAME} is a {foreign.family!r} checkpoint, but the registry entry is {expected_family!r}")
        return foreign.from_transformers_folder(folder, filename=filename, sha256=sha256, remedy=remedy).eval()
    family, config = read_checkpoint_config(folder / CONFIG_NAME)
    if expected_family is not None and family != expected_family:
        raise CheckpointError(f"{folder / CONFIG_NAME} says family {family!r}, but the registry entry is {expected_family!r}")
    weights = folder / filename
    if sha256 is not None and weights.is_file():
        actual = sha256_file(weights)
        if actual != sha256:
            raise CheckpointError(f"sha256 mismatch for {weights}: expected {sha256}, got {actual}; the file is corrupt or altered ({remedy})")
    header, _ = read_header(weights)
    with _bounded_registrations(4 * len(header) + 64, weights), torch.device("meta"):
        skeleton = _build(family, config, folder / CONFIG_NAME)
    check_against_header(skeleton, header, path=weights, family=family)
    del skeleton
    model = _build(family, config, folder / CONFIG_NAME)
    load_weights(model, weights, family=family, remedy=remedy)
    model.load_extra(folder)  # files a family keeps next to its weights (GPT-2's tokenizer.json)
    return model.eval()


def transformers_family(path: Path) -> Any:
    """The family class that reads this config.json in transformers' format (``model_type``, no ``zoo_format``), else None."""
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or "zoo_format" in raw or "model_type" not in raw:
        return None
    for name in list_families():
        cls = family_class(name)
        if cls.transformers_model_type == raw["model_type"]:
            return cls
    raise CheckpointError(f"{path} is a transformers config of model_type {raw['model_type']!r}, which no zoo family reads")


# --------------------------------------------------------------------------- writing
def config_dict(model: Any) -> dict[str, Any]:
    config = model.config
    return {"family": model.family, "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
            "zoo_format": ZOO_FORMAT}


STAGING_TAG = ".zoo-staging-"


def save_pretrained(model: Any, directory: str | os.PathLike[str], *, recipe: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, card: str | None = None, overwrite: bool = False) -> Path:
    """Write ``model`` as a checkpoint folder; readers see the old folder or the new one, never half, never none.

    An existing path is replaced only when it is an empty folder, or a zoo checkpoint holding only the
    files zoo writes and ``overwrite=True``; anything else (a file, a folder with other files) is refused.
    Files and folders get the process umask's permissions.
    """
    target = Path(directory)
    if str(directory) == "" or target.name in ("", ".", ".."):
        raise CheckpointError(f"save_pretrained needs a folder path, got {str(directory)!r}")
    try:
        if target.parent.is_dir():
            _clean_stale(target)
        _refuse_unsafe_target(target, overwrite)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = _make_staging(target)
    except OSError as exc:
        raise CheckpointError(f"cannot write a checkpoint at {target}: {exc.strerror or exc}") from None
    try:
        (staging / CONFIG_NAME).write_text(json.dumps(config_dict(model), indent=2) + "\n")
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt", "family": model.family})
        model.save_extra(staging)  # e.g. GPT-2's tokenizer.json
        if recipe is not None:
            (staging / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        if metrics is not None:
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "README.md").write_text(card if card is not None else default_card(model, recipe=recipe, metrics=metrics))
        mode = 0o666 & ~_umask()  # safetensors writes 0600; every file gets what the user's umask gives
        for path in staging.iterdir():
            os.chmod(path, mode)
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _is_checkpoint(folder: Path) -> bool:
    try:
        return "zoo_format" in json.loads((folder / CONFIG_NAME).read_bytes().decode("utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _refuse_unsafe_target(target: Path, overwrite: bool) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise CheckpointError(f"{target} exists and is not a folder; save_pretrained writes a folder there only "
                              "where nothing would be lost: choose another path")
    if not target.is_dir():
        return
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise CheckpointError(f"cannot read {target}: {exc.strerror or exc}") from None
    if not entries:
        return
    foreign = [name for name in entries if name not in ZOO_FILES or not (target / name).is_file()]
    if foreign or not _is_checkpoint(target):
        shown = foreign or entries
        raise CheckpointError(f"{target} is not empty and is not a zoo checkpoint (it holds {shown[:5]}"
                              f"{'...' if len(shown) > 5 else ''}); zoo never deletes files it did not write: choose another folder")
    if not overwrite:
        raise CheckpointError(f"{target} already holds a zoo checkpoint; pass overwrite=True to replace it")


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_staging(target: Path) -> Path:
    while True:
        staging = target.parent / f".{target.name}{STAGING_TAG}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(staging, 0o777)  # the umask applies, as for any folder the user makes
            return staging
        except FileExistsError:
            continue


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a leftover of a dead process may be tidied)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(target: Path) -> None:
    """Tidy after saves of ``target`` that were killed (their process is gone): staging folders are
    removed; an old checkpoint moved aside by the non-atomic fallback is put back if the name is empty."""
    prefix = f".{target.name}{STAGING_TAG}"
    for path in sorted(target.parent.glob(f"{_glob_escape(prefix)}*")):
        pid = path.name[len(prefix):].partition("-")[0]
        if not pid.isdigit() or pid_alive(int(pid)) or not path.is_dir() or path.is_symlink():
            continue
        if path.name.endswith("-old") and not target.exists() and not target.is_symlink():
            os.rename(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``. Over an existing folder the two are exchanged in one atomic rename,
    so the name always holds a complete checkpoint; the old one, now at the staging name, is deleted
    (or, if the process dies first, by the next save)."""
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)
    else:  # no atomic exchange here: the old folder moves aside for the instant of one rename
        old = staging.with_name(staging.name + "-old")
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)

