"""Publishing a checkpoint to the Hugging Face Hub: validate it completely, then upload it.

The repo id is checked and the folder loaded back and scored on a small batch before anything is
uploaded; what to record in the registry (repo, commit, sha256) comes back.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from .checkpoint import WEIGHTS_NAME, load_folder, pid_alive, save_pretrained, sha256_file
from .errors import CheckpointError, InvalidInputError
from .hub import REVISION_PATTERN
from .registry import valid_repo_id

__all__ = ["PUBLISH_TMP", "publish", "validate_checkpoint"]

PUBLISH_TMP = "zoo-publish-"


def _clean_stale_publish_dirs() -> None:
    """Temporary folders of publishes whose process was killed (a finished publish removes its own)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PUBLISH_TMP}*"):
        pid = path.name[len(PUBLISH_TMP):].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and path.is_dir() and not path.is_symlink() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def publish(model_or_dir: Any, repo_id: str, *, revision: str | None = None, private: bool = False, token: str | None = None,
            commit_message: str | None = None, dry_run: bool = False, endpoint: str | None = None) -> dict[str, Any]:
    """Upload a model (or a checkpoint folder) to the Hub as a zoo checkpoint repo.

    The repo id is checked and the folder loaded back and scored on a small batch before anything
    is uploaded. Returns the registry fields to record: ``hub_repo``, ``revision`` (the commit sha;
    None for a dry run), ``filename``, ``sha256``, and ``folder`` (the folder given; None when a model
    was written to a temporary folder, which is gone once this returns).
    """
    if not valid_repo_id(repo_id):
        raise InvalidInputError(f"{repo_id!r:.120} is not a valid Hub repo id: use ORG/NAME of letters, digits, '-', '_', '.' "
                                "(no '--' or '..', at most 96 characters)")
    if revision is not None and (not isinstance(revision, str) or not REVISION_PATTERN.fullmatch(revision)):
        raise InvalidInputError(f"invalid branch name {revision!r}")
    _clean_stale_publish_dirs()
    with tempfile.TemporaryDirectory(prefix=f"{PUBLISH_TMP}{os.getpid()}-") as tmp:
        given = isinstance(model_or_dir, (str, os.PathLike))
        if given:
            folder = Path(model_or_dir)
            load_folder(folder)  # fails early with a CheckpointError naming what is wrong
        else:
            folder = save_pretrained(model_or_dir, Path(tmp) / "checkpoint")
        validate_checkpoint(folder)
        result = {"hub_repo": repo_id, "revision": None, "filename": WEIGHTS_NAME, "sha256": sha256_file(folder / WEIGHTS_NAME),
                  "folder": str(folder) if given else None}
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
    if not card.is_file() or "library_name: zoo" not in card.read_text(encoding="utf-8", errors="replace"):
        raise CheckpointError(f"{card} is missing or lacks the model card front matter (library_name: zoo)")
    scores = model.log_prob(model.example_batch(2), condition=model.labels[0] if model.labels else None)
    if not all(math.isfinite(v) for v in scores.tolist()):
        raise CheckpointError(f"the checkpoint in {folder} gives non-finite log-likelihoods {scores.tolist()}; not publishing it")
