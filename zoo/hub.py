"""Downloads from the Hugging Face Hub through ``huggingface_hub`` (cache, revisions, offline mode)."""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, hf_hub_download, is_offline_mode, list_repo_files, scan_cache_dir
from huggingface_hub.errors import (
    CacheNotFound,
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .checkpoint import WEIGHTS_NAME, load_folder, save_pretrained, sha256_file
from .errors import CheckpointError, UnknownModelError, WeightsUnavailableError
from .registry import Entry, all_entries, build, resolve_entry

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _download(repo_id: str, filename: str, revision: str | None, **options: Any) -> Path:
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, library_name="zoo", **options))
    except LocalEntryNotFoundError:
        raise WeightsUnavailableError(
            f"{filename} of {repo_id}@{revision or 'main'} is not in the local Hugging Face cache and downloading is "
            f"disabled (HF_HUB_OFFLINE=1 or local_files_only=True); run once online or unset HF_HUB_OFFLINE"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsUnavailableError(f"Hub repo {repo_id!r} does not exist or is private (pass token= for private repos)") from None
    except RevisionNotFoundError:
        raise WeightsUnavailableError(f"Hub repo {repo_id!r} has no revision {revision!r}") from None
    except EntryNotFoundError:
        raise CheckpointError(f"Hub repo {repo_id}@{revision or 'main'} has no file {filename!r}") from None


def download_entry(entry: Entry, *, revision: str | None = None, **options: Any) -> Path:
    """Fetch an entry's ``config.json`` and weights into the HF cache; returns the snapshot folder."""
    rev = revision or entry.revision
    _download(entry.hub_repo, "config.json", rev, **options)
    return _download(entry.hub_repo, entry.filename, rev, **options).parent


def load_hub_repo(spec: str, **options: Any) -> Any:
    """Load ``org/repo[@revision]`` holding a zoo checkpoint (config.json + model.safetensors)."""
    repo_id, _, revision = spec.partition("@")
    revision = options.pop("revision", None) or revision or None
    try:
        folder = _download(repo_id, "config.json", revision, **options).parent
    except CheckpointError:
        raise CheckpointError(f"Hub repo {repo_id!r} has no config.json, so it is not a zoo checkpoint") from None
    try:
        _download(repo_id, "model.safetensors", revision, **options)
    except (CheckpointError, WeightsUnavailableError) as exc:
        pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        if not pickles and not options.get("local_files_only") and not is_offline_mode():
            pickles = [f for f in list_repo_files(repo_id, revision=revision) if f.endswith(PICKLE_SUFFIXES)]
        if isinstance(exc, WeightsUnavailableError) and not pickles:
            raise
        hint = f"; it has only pickle weights {pickles}, which zoo never loads from a download" if pickles else ""
        raise CheckpointError(f"Hub repo {repo_id!r} has no model.safetensors{hint}") from None
    return load_folder(folder)


def load(name: str, *, pretrained: bool = True, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         **download: Any) -> Any:
    """A ready model from a registry name, ``local-dir:PATH`` or ``hf-hub:org/repo[@rev]``.

    ``pretrained=False`` builds the entry's architecture untrained. Download options
    (``cache_dir``, ``local_files_only``, ``force_download``, ``revision``) apply to Hub entries.
    """
    if not isinstance(name, str):
        raise UnknownModelError(f"model name must be a str, got {type(name).__name__}")
    if name.startswith(LOCAL_PREFIX):
        model = load_folder(Path(name.removeprefix(LOCAL_PREFIX)).expanduser())
    elif name.startswith(HUB_PREFIX):
        model = load_hub_repo(name.removeprefix(HUB_PREFIX), **download)
    else:
        model = _load_entry(_entry_for(name), pretrained=pretrained, **download)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def _entry_for(name: str) -> Entry:
    try:
        return resolve_entry(name)
    except UnknownModelError:
        if re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w./-]+)?", name) and not Path(name).exists():
            raise UnknownModelError(f"{name!r} looks like a Hub repo id; load it with zoo.load('{HUB_PREFIX}{name}')") from None
        if os.sep in name or name.startswith((".", "~")) or Path(name).exists():
            raise UnknownModelError(f"{name!r} looks like a path; load a checkpoint folder with zoo.load('{LOCAL_PREFIX}{name}')") from None
        raise


def _load_entry(entry: Entry, *, pretrained: bool, **download: Any) -> Any:
    if not pretrained:
        model = build(entry.family, **entry.config)
    elif entry.bundled and entry.local_dir is not None and (entry.local_dir / entry.filename).is_file():
        model = load_folder(entry.local_dir, sha256=entry.sha256, expected_family=entry.family,
                            remedy="the installed package is damaged: reinstall zoo")
    elif entry.status != "available" or entry.hub_repo is None:
        raise WeightsUnavailableError(
            f"no weights are published for {entry.name!r} yet ({entry.status}); train them with `zoo train {entry.name} --output runs/{entry.name}` "
            f"or build the architecture untrained with zoo.load({entry.name!r}, pretrained=False)"
        )
    else:
        model = load_folder(download_entry(entry, **download), sha256=entry.sha256, expected_family=entry.family,
                            remedy=f"clear it with `zoo cache rm {entry.name}` or reload with force_download=True")
    model.entry = entry
    return model.eval()


# --------------------------------------------------------------------------- publishing
def publish(
    model_or_dir: Any,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Upload a model (or a checkpoint folder) to the Hub as a zoo checkpoint repo.

    The folder is written atomically, loaded back and scored on a small batch before anything is
    uploaded. Returns the registry fields to record: ``hub_repo``, ``revision`` (the commit sha;
    None for a dry run), ``filename``, ``sha256``, and ``folder``.
    """
    with tempfile.TemporaryDirectory(prefix="zoo-publish-") as tmp:
        if isinstance(model_or_dir, (str, Path)):
            folder = Path(model_or_dir)
            load_folder(folder)  # fails early with a CheckpointError naming what is wrong
        else:
            folder = save_pretrained(model_or_dir, Path(tmp) / "checkpoint")
        validate_checkpoint(folder)
        result = {"hub_repo": repo_id, "revision": None, "filename": WEIGHTS_NAME, "sha256": sha256_file(folder / WEIGHTS_NAME),
                  "folder": str(folder)}
        if dry_run:
            return result
        api = HfApi(endpoint=endpoint, token=token, library_name="zoo")
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                   commit_message=commit_message or f"Upload zoo checkpoint {repo_id}",
                                   allow_patterns=["config.json", "model.safetensors", "README.md", "recipe.json", "*.png", "*.wav"])
        result["revision"] = commit.oid
        return result


def validate_checkpoint(folder: Path) -> None:
    """Load ``folder`` back and score a small batch: a checkpoint that cannot score is never uploaded."""
    model = load_folder(folder)
    card = folder / "README.md"
    if not card.is_file() or "library_name: zoo" not in card.read_text():
        raise CheckpointError(f"{card} is missing or lacks the model card front matter (library_name: zoo)")
    scores = model.log_prob(model.example_batch(2), condition=model.labels[0] if model.labels else None)
    if not all(math.isfinite(v) for v in scores.tolist()):
        raise CheckpointError(f"the checkpoint in {folder} gives non-finite log-likelihoods {scores.tolist()}; not publishing it")


# --------------------------------------------------------------------------- cache
def cached_entries(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every cached revision of a Hub repo that a registry entry names, with its weights' verification."""
    by_repo = {e.hub_repo: e for e in all_entries() if e.hub_repo}
    try:
        scan = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    rows = []
    for repo in scan.repos:
        entry = by_repo.get(repo.repo_id)
        if entry is None or repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            files = {f.file_name: f for f in rev.files}
            weights = files.get(entry.filename)
            actual = sha256_file(weights.file_path) if weights else None
            rows.append({
                "name": entry.name, "repo": repo.repo_id, "revision": rev.commit_hash, "size_bytes": rev.size_on_disk,
                "path": str(rev.snapshot_path), "sha256": actual,
                "verified": None if entry.sha256 is None or actual is None else actual == entry.sha256,
            })
    return rows


def remove_cached(name: str, cache_dir: str | Path | None = None) -> int:
    """Delete every cached revision of entry ``name``'s repo; returns the number of bytes freed."""
    entry = resolve_entry(name)
    hashes = [row["revision"] for row in cached_entries(cache_dir) if row["name"] == entry.name]
    if not hashes:
        return 0
    strategy = scan_cache_dir(cache_dir).delete_revisions(*hashes)
    strategy.execute()
    return strategy.expected_freed_size
