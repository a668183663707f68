"""Loading from a seeded Hugging Face cache with no network (HF_HUB_OFFLINE=1), and `zoo cache`.

The cache is laid out exactly as huggingface_hub writes it (blobs/, snapshots/<commit>/ symlinks,
refs/main), so these tests run the real hf_hub_download and scan_cache_dir code offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

import zoo
import zoo.hub
from zoo.checkpoint import sha256_file
from zoo.cli import main
from zoo.registry import Entry

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "zoo-test/tiny-pixelcnn"


def seed_cache(cache: Path, repo_id: str, commit: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` as one revision of ``repo_id`` in the real huggingface_hub cache layout."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def cache(tmp_path, tiny_folder):
    files = {name: (tiny_folder / name).read_bytes() for name in ("config.json", "model.safetensors", "README.md")}
    seed_cache(tmp_path / "hub", REPO, COMMIT, files)
    return tmp_path / "hub"


@pytest.fixture
def entry(isolated_registry, tiny_folder):
    reg = isolated_registry
    config = json.loads((tiny_folder / "config.json").read_text())["config"]
    e = Entry("pixelcnn-hub-tiny", "pixelcnn", config, hub_repo=REPO, revision=COMMIT,
              sha256=sha256_file(tiny_folder / "model.safetensors"), dataset="toy")
    reg.add_entry(e)
    return e


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_entry_loads_from_the_cache_offline(offline, cache, entry, tiny_binary):
    model = zoo.load(entry.name, cache_dir=cache)
    assert model.entry.name == entry.name and same_weights(model, tiny_binary)


def test_hf_hub_prefix_loads_offline(offline, cache, tiny_binary):
    assert same_weights(zoo.load(f"hf-hub:{REPO}@{COMMIT}", cache_dir=cache), tiny_binary)
    assert same_weights(zoo.load(f"hf-hub:{REPO}", cache_dir=cache), tiny_binary)  # refs/main


def test_offline_with_nothing_cached_names_repo_revision_and_switch(offline, tmp_path, entry):
    with pytest.raises(zoo.WeightsUnavailableError, match=f"{REPO}@{COMMIT} is not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        zoo.load(entry.name, cache_dir=tmp_path / "empty")


def test_altered_cached_weights_are_detected(offline, cache, entry):
    blob = (cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    expected = (rf"sha256 mismatch for model.safetensors of {REPO}@{COMMIT} in the cache .*: expected {entry.sha256}, "
                rf"got [0-9a-f]{{64}}.*cannot be fetched again offline.*zoo cache rm {entry.name}")
    with pytest.raises(zoo.CheckpointError, match=expected):
        zoo.load(entry.name, cache_dir=cache)
    assert main(["cache", "verify", "--cache-dir", str(cache)]) == 1
    assert main(["cache", "rm", entry.name, "--cache-dir", str(cache)]) == 0
    assert zoo.hub.cached_entries(cache) == []


def test_cache_ls_and_verify(cache, entry, capsys):
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert entry.name in out and COMMIT[:12] in out and " ok " in out
    assert main(["cache", "verify", "--cache-dir", str(cache)]) == 0


def test_repo_without_config_or_with_only_pickles(offline, tmp_path):
    hub = tmp_path / "hub"
    config = b'{"family": "pixelcnn", "config": {}, "zoo_format": 1}'
    seed_cache(hub, "someone/pickled", COMMIT, {"pytorch_model.bin": b"not loaded", "config.json": config})
    with pytest.raises(zoo.CheckpointError, match=r"no model.safetensors; it has only pickle weights \['pytorch_model.bin'\]"):
        zoo.load(f"hf-hub:someone/pickled@{COMMIT}", cache_dir=hub)
    seed_cache(hub, "someone/other", COMMIT, {"weights.safetensors": b""})
    with pytest.raises(zoo.WeightsUnavailableError, match="not in the local Hugging Face cache"):  # offline: unknowable
        zoo.load(f"hf-hub:someone/other@{COMMIT}", cache_dir=hub)


def test_env_var_offline_in_a_fresh_process(cache, tiny_folder):
    """HF_HUB_OFFLINE=1 set in the environment, as a user would, with huggingface_hub imported fresh."""
    script = f"import zoo; m = zoo.load('hf-hub:{REPO}@{COMMIT}', cache_dir={str(cache)!r}); print(m.num_parameters())"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}  # any network use would fail
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == zoo.load(f"local-dir:{tiny_folder}").num_parameters()


def test_repo_without_config_json(monkeypatch):
    """The Hub answers 'entry not found' for config.json: the repo is not a zoo checkpoint."""
    from huggingface_hub.errors import EntryNotFoundError

    def absent(repo_id, filename, **kwargs):
        raise EntryNotFoundError(f"404: {filename} not found in {repo_id}")

    monkeypatch.setattr(zoo.hub, "hf_hub_download", absent)
    monkeypatch.setattr(zoo.hub, "get_hf_file_metadata", lambda url, **kwargs: absent("someone/not-zoo", url.rsplit("/", 1)[-1]))
    with pytest.raises(zoo.CheckpointError, match="'someone/not-zoo' has no config.json, so it is not a zoo checkpoint"):
        zoo.load("hf-hub:someone/not-zoo")


def test_cache_verify_covers_hf_hub_repos(tmp_path, tiny_folder, capsys):
    """A repo loaded with hf-hub: (no registry entry) is listed and re-hashed against its blob names."""
    hub = tmp_path / "hub"
    snapshot = seed_cache(hub, "someone/plain", COMMIT, {n: (tiny_folder / n).read_bytes() for n in ("config.json", "model.safetensors")})
    seed_cache(hub, "someone/not-zoo", COMMIT, {"config.json": b'{"architectures": ["Bert"]}'})
    assert main(["cache", "verify", "--cache-dir", str(hub)]) == 0
    out = capsys.readouterr().out
    assert "hf-hub:someone/plain" in out and " ok " in out and "not-zoo" not in out
    blob = (snapshot / "config.json").resolve()
    blob.write_bytes(blob.read_bytes().replace(b"pixelcnn", b"pixelcnX"))
    assert main(["cache", "verify", "--cache-dir", str(hub)]) == 1
    assert "MISMATCH config.json" in capsys.readouterr().out
    assert main(["cache", "rm", "hf-hub:someone/plain", "--cache-dir", str(hub)]) == 0
    assert zoo.hub.cached_entries(hub) == []
