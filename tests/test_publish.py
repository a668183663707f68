"""Publishing: validation before upload, dry runs, and the real huggingface_hub upload client.

The upload runs huggingface_hub's own create_repo + upload_folder (preupload, LFS batch, PUT,
NDJSON commit) against an HTTP-level stand-in of the Hub's upload API on 127.0.0.1
(tests/hub_standin.py). It proves our call sequence and the bytes that reach the server; it does
not prove the real Hub's authentication, Xet storage or server-side validation.
"""

from __future__ import annotations

import json

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load, load_file, save_file

import zoo
from zoo.checkpoint import sha256_file
from zoo.cli import main
from zoo.publishing import publish

from .helpers import load_tool
from .hub_standin import HubUploadStandIn


@pytest.fixture
def hub(monkeypatch):
    # The stand-in speaks the LFS protocol, not Xet: keep the client on its LFS path. It is on
    # loopback, so the test also works where HF_HUB_OFFLINE=1 is set for everything else (CI).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubUploadStandIn(namespace="me") as server:
        yield server


def test_dry_run_validates_and_returns_the_registry_fields(tiny_binary, tiny_folder):
    result = publish(tiny_folder, "me/tiny", dry_run=True)
    assert result["revision"] is None and result["hub_repo"] == "me/tiny" and result["filename"] == "model.safetensors"
    assert result["sha256"] == sha256_file(tiny_folder / "model.safetensors")
    from_model = publish(tiny_binary, "me/tiny", dry_run=True)  # written to a temporary folder, then validated
    assert len(from_model["sha256"]) == 64 and from_model["folder"] is None  # its temporary folder is gone: not returned
    assert result["folder"] == str(tiny_folder)
    with pytest.raises(zoo.InvalidInputError, match="'me/bad repo' is not a valid Hub repo id"):
        publish(tiny_folder, "me/bad repo", dry_run=True)


def test_broken_folders_are_never_uploaded(tiny_folder, hub):
    (tiny_folder / "README.md").write_text("# no front matter\n")
    with pytest.raises(zoo.CheckpointError, match="model card front matter"):
        publish(tiny_folder, "me/tiny", endpoint=hub.endpoint, token="t")
    tensors = load_file(tiny_folder / "model.safetensors")
    tensors.pop("input.bias")
    save_file(tensors, tiny_folder / "model.safetensors", metadata={"format": "pt", "family": "pixelcnn"})
    with pytest.raises(zoo.CheckpointError, match="missing keys"):
        publish(tiny_folder, "me/tiny", endpoint=hub.endpoint, token="t")
    assert hub.repos == {}  # nothing reached the server, not even create_repo


def test_upload_through_the_real_client(tiny_binary, tiny_folder, hub):
    result = publish(tiny_binary, "me/tiny", endpoint=hub.endpoint, token="t", commit_message="first")
    repo = hub.repo("me/tiny")
    assert result["revision"] == repo.head.oid and repo.head.message == "first"
    assert set(repo.head.files) == {"config.json", "model.safetensors", "README.md"}
    uploaded = load(repo.head.files["model.safetensors"])
    assert all(torch.equal(uploaded[k], v) for k, v in tiny_binary.state_dict().items()) and len(uploaded) == len(tiny_binary.state_dict())
    assert "model.safetensors" in repo.head.lfs_paths
    card = repo.head.files["README.md"].decode()
    assert "library_name: zoo" in card and "- pixelcnn" in card and "- image" in card
    # a second publish of the same repo (here with an edited card) is a new commit on top of the first
    (tiny_folder / "README.md").write_text((tiny_folder / "README.md").read_text() + "\nRetrained.\n")
    again = publish(tiny_folder, "me/tiny", endpoint=hub.endpoint, token="t")
    assert len(repo.commits) == 2 and again["revision"] == repo.head.oid != result["revision"]
    assert repo.head.files["model.safetensors"] == (tiny_folder / "model.safetensors").read_bytes()  # a folder goes up as is


def test_cli_publish_dry_run(tiny_folder, capsys):
    assert main(["publish", str(tiny_folder), "--repo-id", "me/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing uploaded")
    fields = json.loads(out[out.index("{"):])
    assert fields == {"hub_repo": "me/tiny", "revision": None, "filename": "model.safetensors",
                      "sha256": sha256_file(tiny_folder / "model.safetensors")}


def test_ship_card_curve_sums_resumed_segments(tmp_path):
    """tools/ship.py's card section: the validation table, and training time summed over a run resumed once."""
    ship = load_tool("ship")
    assert ship.training_curve(tmp_path / "best") == []  # no metrics.jsonl: no section
    records = [{"step": 0, "device": "cpu", "world_size": 2, "precision": "bf16"}, {"step": 50, "elapsed_s": 600.0},
               {"step": 50, "valid": {"nll_nats": 90.0, "bits_per_dim": 0.2}},
               {"step": 50, "device": "cpu", "world_size": 2, "precision": "bf16"}, {"step": 100, "elapsed_s": 300.0},
               {"step": 100, "valid": {"nll_nats": 85.5, "bits_per_dim": 0.15}}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    lines = ship.training_curve(tmp_path / "best")
    assert "resumed 1 time(s): 15 minutes of training in all." in lines[2]
    assert lines[-3:] == ["| 50 | 90.000 | 0.2000 |", "| 100 | 85.500 | 0.1500 |", ""]
    assert "" not in lines[4:-1]  # no stray empty line inside the section
