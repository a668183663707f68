"""Everything that goes through ``huggingface_hub``: name resolution, verified downloads, publishing, the cache.

Every downloaded file is checked against the hash the Hub publishes for it before use: the blob a
cache file points to is named by its etag, which is the file's sha256 for LFS files and its git
blob sha1 for small ones. A mismatching or truncated file is fetched again once when online;
offline the error names the repo, the file and the remedy. Registry entries add their own sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, list_repo_files, scan_cache_dir
from huggingface_hub.errors import (
    CacheNotFound,
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_folder,
    read_checkpoint_config,
    sha256_file,
    transformers_family,
)
from .errors import CheckpointError, InvalidInputError, UnknownModelError, WeightsUnavailableError
from .registry import Entry, all_entries, build, family_class, resolve_entry, valid_repo_id

__all__ = ["HUB_PREFIX", "LOCAL_PREFIX", "cached_entries", "download_entry", "load", "load_hub_repo", "parse_device",
           "parse_dtype", "parse_hub_spec", "remove_cached", "verify_cached_file"]

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
DOWNLOAD_OPTIONS = ("cache_dir", "local_files_only", "force_download", "revision", "token")
LOAD_OPTIONS = ("pretrained", "device", "dtype", *DOWNLOAD_OPTIONS)
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
REVISION_PATTERN = re.compile(r"[\w.-]+(/[\w.-]+)*")


# --------------------------------------------------------------------------- arguments
def parse_dtype(dtype: Any) -> torch.dtype | None:
    """A floating torch dtype from a dtype or one of its usual spellings ("bf16", "float32", ...)."""
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype in FLOAT_DTYPES):
        return dtype
    if isinstance(dtype, str) and dtype.strip().lower().removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.strip().lower().removeprefix("torch.")]
    raise InvalidInputError(f"dtype must be a floating torch dtype or one of {sorted(DTYPES)}, got {dtype!r}")


def parse_device(device: Any) -> torch.device | None:
    """A torch device that exists here, or InvalidInputError naming the value."""
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)) or isinstance(device, bool):
        raise InvalidInputError(f"device must be a str such as 'cpu' or 'cuda:0' (or a torch.device), got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InvalidInputError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(f"device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}[dev.type]
    if not available:
        raise InvalidInputError(f"device {device!r} asked for, but {dev.type.upper()} is not available here; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidInputError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    """``org/repo[@revision]`` -> ``(repo_id, revision)``, refusing what the Hub would refuse."""
    repo_id, at, revision = spec.partition("@")
    if not valid_repo_id(repo_id):
        raise InvalidInputError(f"{HUB_PREFIX}{spec!r:.120} is not a Hub repo: use {HUB_PREFIX}ORG/REPO[@REVISION], where ORG and REPO "
                                "are letters, digits, '-', '_' or '.' (no '--' or '..', at most 96 characters)")
    if at and not REVISION_PATTERN.fullmatch(revision):
        raise InvalidInputError(f"{HUB_PREFIX}{spec!r:.120} has an invalid revision {revision!r:.60}: a branch, tag or commit sha")
    return repo_id, revision or None


# --------------------------------------------------------------------------- verified downloads
def _git_sha1(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cached_file(path: Path) -> tuple[bool | None, str]:
    """``(ok, expected)`` for a file in the HF cache, checked against its blob's name (the Hub's etag):
    sha256 for LFS files, git blob sha1 for the others. ``None``: the name is no hash (unverifiable)."""
    blob = Path(path).resolve()
    name = blob.name
    if not blob.is_file():
        return False, name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        return sha256_file(blob) == name, name
    if re.fullmatch(r"[0-9a-f]{40}", name):
        return _git_sha1(blob) == name, name
    return None, name


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub's retry warnings would bury the one error line zoo gives."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _offline(options: dict[str, Any]) -> bool:
    return bool(options.get("local_files_only")) or constants.is_offline_mode()


def _unreachable(repo_id: str, filename: str, revision: str | None, exc: BaseException, endpoint: str | None) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"the Hugging Face endpoint {endpoint or constants.ENDPOINT} is unreachable ({type(exc).__name__}: {str(exc)[:160]}), and "
        f"{filename} of {repo_id}@{revision or 'main'} is not cached; check the network or HF_ENDPOINT or set HF_HUB_OFFLINE=1 to use the cache only")


def _hub_errors(repo_id: str, filename: str, revision: str | None, exc: BaseException) -> Exception:
    if isinstance(exc, LocalEntryNotFoundError):
        return WeightsUnavailableError(f"{filename} of {repo_id}@{revision or 'main'} is not in the local Hugging Face cache and downloading "
                                       "is disabled (HF_HUB_OFFLINE=1 or local_files_only=True); run once online or unset HF_HUB_OFFLINE")
    if isinstance(exc, GatedRepoError):
        return WeightsUnavailableError(f"Hub repo {repo_id!r} is gated: accept its terms on the Hub and pass token=")
    if isinstance(exc, RepositoryNotFoundError):
        return WeightsUnavailableError(f"Hub repo {repo_id!r} does not exist or is private (pass token= for private repos)")
    if isinstance(exc, RevisionNotFoundError):
        return WeightsUnavailableError(f"Hub repo {repo_id!r} has no revision {revision!r}")
    if isinstance(exc, EntryNotFoundError):
        return CheckpointError(f"Hub repo {repo_id}@{revision or 'main'} has no file {filename!r}")
    if isinstance(exc, HFValidationError):
        return InvalidInputError(f"invalid Hub argument for {repo_id!r}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _download(repo_id: str, filename: str, revision: str | None, *, remedy: str = "", endpoint: str | None = None,
              **options: Any) -> Path:
    """``hf_hub_download`` verified against the Hub's hash; one automatic re-download when online."""
    offline = _offline(options)
    options = {k: v for k, v in options.items() if v is not None and v is not False}
    with _quiet_hub():
        if not offline:
            try:  # one HEAD without retries: an unreachable endpoint is said at once, not after 20 s of warnings
                get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint),
                                     token=options.get("token"), endpoint=endpoint)
            except (HfHubHTTPError, EntryNotFoundError, HFValidationError) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
                if status < 500:
                    raise _hub_errors(repo_id, filename, revision, exc) from None
                offline = _unreachable_or_cached(repo_id, filename, revision, exc, endpoint, options)
            except Exception as exc:  # transport errors: connection refused, DNS, timeouts, not a Hub
                offline = _unreachable_or_cached(repo_id, filename, revision, exc, endpoint, options)
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo", endpoint=endpoint,
                                        **{**options, "local_files_only": offline or options.get("local_files_only", False)}))
        except (HfHubHTTPError, EntryNotFoundError, HFValidationError) as exc:
            raise _hub_errors(repo_id, filename, revision, exc) from None
        ok, expected = verify_cached_file(path)
        if ok is False and not offline:
            path = Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo", endpoint=endpoint,
                                        **{**options, "force_download": True}))
            ok, expected = verify_cached_file(path)
            if ok is False:
                raise CheckpointError(f"{filename} of {repo_id}@{revision or 'main'} does not match the hash the Hub publishes for it "
                                      f"({expected}) even after a fresh download: the server's copy or the connection is damaged")
    if ok is False:
        actual = sha256_file(path) if path.exists() and len(expected) == 64 else "a different hash"
        raise CheckpointError(
            f"sha256 mismatch for {filename} of {repo_id}@{revision or 'main'} in the cache ({path}): expected {expected}, got {actual}; "
            f"the cached file is corrupt or truncated and cannot be fetched again offline: load it again online "
            f"(zoo re-downloads it){remedy or ', or reload with force_download=True'}"
        )
    return path


def _unreachable_or_cached(repo_id: str, filename: str, revision: str | None, exc: BaseException, endpoint: str | None,
                           options: dict[str, Any]) -> bool:
    """The endpoint cannot be asked: use a cached copy (returns True, "offline") or say the endpoint is unreachable."""
    try:
        hf_hub_download(repo_id, filename, revision=revision, library_name="zoo",
                        **{**options, "local_files_only": True, "force_download": False})
    except (HfHubHTTPError, EntryNotFoundError, HFValidationError):
        raise _unreachable(repo_id, filename, revision, exc, endpoint) from None
    return True


def download_entry(entry: Entry, *, revision: str | None = None, **options: Any) -> Path:
    """Fetch an entry's ``config.json`` and weights into the HF cache; returns the snapshot folder."""
    rev = revision or entry.revision
    remedy = f", or clear it with `zoo cache rm {entry.name}`"
    _download(entry.hub_repo, CONFIG_NAME, rev, remedy=remedy, **options)
    _download_extra_files(entry.hub_repo, rev, family_class(entry.family), remedy=remedy, **options)
    return _download(entry.hub_repo, entry.filename, rev, remedy=remedy, **options).parent


def _download_extra_files(repo_id: str, revision: str | None, cls: Any, **options: Any) -> None:
    """The files a family keeps next to its weights (GPT-2: tokenizer.json, vocab.json, merges.txt); absent ones are skipped."""
    for name in cls.extra_files if cls is not None else ():
        try:
            _download(repo_id, name, revision, **options)
        except CheckpointError as exc:
            if "has no file" not in str(exc):
                raise


def load_hub_repo(spec: str, **options: Any) -> Any:
    """Load ``org/repo[@revision]`` holding a zoo checkpoint (config.json + model.safetensors)."""
    repo_id, revision = parse_hub_spec(spec)
    revision = options.pop("revision", None) or revision
    try:
        folder = _download(repo_id, CONFIG_NAME, revision, **options).parent
    except CheckpointError as exc:
        if "has no file" not in str(exc):
            raise
        raise CheckpointError(f"Hub repo {repo_id!r} has no config.json, so it is not a zoo checkpoint") from None
    cls = transformers_family(folder / CONFIG_NAME)
    if cls is None:
        family, _ = read_checkpoint_config(folder / CONFIG_NAME)  # parse-validated before the weights are fetched
        with contextlib.suppress(UnknownModelError):  # load_folder says so, naming the file
            cls = family_class(family)
    _download_extra_files(repo_id, revision, cls, **options)
    try:
        _download(repo_id, WEIGHTS_NAME, revision, **options)
    except (CheckpointError, WeightsUnavailableError) as exc:
        if "has no file" not in str(exc) and not (isinstance(exc, WeightsUnavailableError) and "not in the local" in str(exc)):
            raise
        pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        if not pickles and not _offline(options):
            with contextlib.suppress(Exception):
                pickles = [f for f in list_repo_files(repo_id, revision=revision, token=options.get("token"))
                           if f.endswith(PICKLE_SUFFIXES)]
        if isinstance(exc, WeightsUnavailableError) and not pickles:
            raise
        hint = f"; it has only pickle weights {pickles}, which zoo never loads from a download" if pickles else ""
        raise CheckpointError(f"Hub repo {repo_id!r} has no model.safetensors{hint}") from None
    return load_folder(folder)


# --------------------------------------------------------------------------- zoo.load
def load(name: str, *, pretrained: bool = True, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
         **download: Any) -> Any:
    """A ready model from a registry name, ``local-dir:PATH`` or ``hf-hub:org/repo[@rev]``.

    ``pretrained=False`` builds the entry's architecture untrained. Download options
    (``cache_dir``, ``local_files_only``, ``force_download``, ``revision``, ``token``) apply to Hub
    repos; any other keyword is refused. ``dtype`` takes a torch dtype or "float32"/"bf16"/"fp16"...
    """
    unknown = sorted(set(download) - set(DOWNLOAD_OPTIONS))
    if unknown:
        raise InvalidInputError(f"zoo.load got unknown keyword argument(s) {unknown}; accepted: {list(LOAD_OPTIONS)}")
    if not isinstance(pretrained, bool):
        raise InvalidInputError(f"pretrained must be True or False, got {pretrained!r}")
    dev, dt = parse_device(device), parse_dtype(dtype)
    if not isinstance(name, str):
        raise UnknownModelError(f"model name must be a str, got {type(name).__name__}")
    if not name.strip():
        raise UnknownModelError(f"empty model name {name!r}: pass a registry name (see `zoo list`), local-dir:PATH or hf-hub:ORG/REPO")
    if name.startswith(LOCAL_PREFIX):
        path = name.removeprefix(LOCAL_PREFIX)
        if not path:
            raise UnknownModelError("local-dir: needs a folder path, e.g. local-dir:runs/bmnist/best")
        model = load_folder(Path(path).expanduser())
    elif name.startswith(HUB_PREFIX):
        model = load_hub_repo(name.removeprefix(HUB_PREFIX), **download)
    else:
        model = _load_entry(_entry_for(name), pretrained=pretrained, **download)
    if dev is not None or dt is not None:
        model = model.to(device=dev, dtype=dt)
    return model


def _entry_for(name: str) -> Entry:
    try:
        return resolve_entry(name)
    except UnknownModelError:
        looks_local = name.startswith((".", "~", "/")) or Path(name).exists()
        if not looks_local and re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w./-]+)?", name):
            raise UnknownModelError(f"{name!r} looks like a Hub repo id; load it with zoo.load('{HUB_PREFIX}{name}')") from None
        if looks_local or os.sep in name or (os.altsep and os.altsep in name):
            raise UnknownModelError(f"{name!r} looks like a path; load a checkpoint folder with zoo.load('{LOCAL_PREFIX}{name}')") from None
        raise


def _load_entry(entry: Entry, *, pretrained: bool, **download: Any) -> Any:
    if not pretrained:
        model = build(entry.family, **entry.config)
    elif entry.bundled and entry.local_dir is not None and (entry.local_dir / entry.filename).is_file():
        model = load_folder(entry.local_dir, filename=entry.filename, sha256=entry.sha256, expected_family=entry.family,
                            remedy="the installed package is damaged: reinstall zoo")
    elif entry.status != "available" or entry.hub_repo is None:
        raise WeightsUnavailableError(
            f"no weights are published for {entry.name!r} yet ({entry.status}); train them with `zoo train {entry.name} --output runs/{entry.name}` "
            f"or build the architecture untrained with zoo.load({entry.name!r}, pretrained=False)"
        )
    else:
        model = load_folder(download_entry(entry, **download), filename=entry.filename, sha256=entry.sha256,
                            expected_family=entry.family,
                            remedy=f"clear it with `zoo cache rm {entry.name}` or reload with force_download=True")
    model.entry = entry
    return model.eval()


# --------------------------------------------------------------------------- cache
def _is_zoo_snapshot(snapshot: Path) -> bool:
    return (snapshot / CONFIG_NAME).is_file() and '"zoo_format"' in (snapshot / CONFIG_NAME).read_text(errors="replace")


def cached_entries(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every cached revision of a zoo checkpoint repo (a registry entry's, or any ``hf-hub:`` repo holding a zoo
    config.json), with each file checked against its blob's hash and the weights against the entry's sha256."""
    by_repo = {e.hub_repo: e for e in all_entries() if e.hub_repo}
    try:
        scan = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    rows = []
    for repo in sorted(scan.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        entry = by_repo.get(repo.repo_id)
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            if entry is None and not _is_zoo_snapshot(Path(rev.snapshot_path)):
                continue
            files = {f.file_name: f for f in rev.files}
            checks = {name: verify_cached_file(Path(f.file_path))[0] for name, f in sorted(files.items())}
            bad = [name for name, ok in checks.items() if ok is False]
            weights = files.get(entry.filename if entry else WEIGHTS_NAME)
            actual = sha256_file(weights.file_path) if weights and Path(weights.file_path).exists() else None
            if entry is not None and entry.sha256 and actual is not None and actual != entry.sha256:
                bad.append(f"{entry.filename} (registry sha256)")
            verified = False if bad else (True if any(ok for ok in checks.values()) else None)
            rows.append({
                "name": entry.name if entry else f"{HUB_PREFIX}{repo.repo_id}", "repo": repo.repo_id, "revision": rev.commit_hash,
                "size_bytes": rev.size_on_disk, "path": str(rev.snapshot_path), "sha256": actual, "verified": verified, "bad": bad,
            })
    return rows


def remove_cached(name: str, cache_dir: str | Path | None = None) -> int:
    """Delete every cached revision of entry ``name``'s repo (or of ``hf-hub:ORG/REPO``); returns the bytes freed."""
    if name.startswith(HUB_PREFIX):
        key = f"{HUB_PREFIX}{parse_hub_spec(name.removeprefix(HUB_PREFIX))[0]}"
    else:
        key = resolve_entry(name).name
    repos = {row["repo"] for row in cached_entries(cache_dir) if row["name"] == key}
    freed = 0
    for repo in scan_cache_dir(cache_dir).repos:  # the repo's whole folder: a revision hash may be cached for other repos too
        if repo.repo_type == "model" and repo.repo_id in repos:
            freed += repo.size_on_disk
            shutil.rmtree(repo.repo_path)
    return freed
