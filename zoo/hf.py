"""Downloads from the Hugging Face Hub through ``huggingface_hub`` (cache, revisions, offline mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .errors import CheckpointError, WeightsUnavailableError
from .registry import Entry

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
    from .hub import load_folder

    repo_id, _, revision = spec.partition("@")
    revision = options.pop("revision", None) or revision or None
    try:
        folder = _download(repo_id, "config.json", revision, **options).parent
    except CheckpointError:
        raise CheckpointError(f"Hub repo {repo_id!r} has no config.json, so it is not a zoo checkpoint") from None
    try:
        _download(repo_id, "model.safetensors", revision, **options)
    except CheckpointError:
        from huggingface_hub import list_repo_files

        files = list_repo_files(repo_id, revision=revision)
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        hint = f"; it has only pickle weights {pickles}, which zoo never loads from a download" if pickles else ""
        raise CheckpointError(f"Hub repo {repo_id!r} has no model.safetensors{hint}") from None
    model = load_folder(folder)
    return model
