"""Downloads over HTTP from a real Hub-protocol server (olah on 127.0.0.1), with HF_ENDPOINT pointing at it.

Each client runs in a fresh interpreter, because huggingface_hub reads HF_ENDPOINT at import, as a
user's process would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from .conftest import tiny_pixelcnn
from .olah_server import OlahServer, commit_folder

pytest.importorskip("olah")

REPO = "zoo-test/tiny-pixelcnn"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A mirror repo with two commits (two different models) behind a running olah server."""
    root = tmp_path_factory.mktemp("olah")
    folders, shas = [], []
    for seed in (1, 2):
        torch.manual_seed(seed)
        folder = root / f"model{seed}"
        tiny_pixelcnn().save_pretrained(folder)
        folders.append(folder)
        shas.append(commit_folder(root / "mirrors", REPO, folder, f"model {seed}"))
    server = OlahServer(root).start()
    yield server, folders, shas
    server.stop()


CLIENT = """
import hashlib, json, sys, zoo
spec = json.loads(sys.argv[1])
if spec.get("entry"):
    zoo.register_entry(zoo.Entry(**spec["entry"]))
out = {}
for name in spec["load"]:
    try:
        model = zoo.load(name, cache_dir=spec["cache"], **spec.get("options", {}))
        state = model.state_dict()
        out[name] = {"digest": hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()}
    except zoo.ZooError as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def run_client(server, tmp_path, spec, *, wait=True):
    cmd = [sys.executable, "-c", textwrap.dedent(CLIENT), json.dumps(spec)]
    proc = subprocess.Popen(cmd, env=server.client_env(tmp_path / "hf_home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def digest_of(folder):
    import hashlib

    state = load_file(folder / "model.safetensors")
    return hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()


def entry_spec(folder, sha):
    from zoo.checkpoint import sha256_file

    config = json.loads((folder / "config.json").read_text())["config"]
    return {"name": "pixelcnn-served", "family": "pixelcnn", "config": config, "hub_repo": REPO, "revision": sha,
            "sha256": sha256_file(folder / "model.safetensors")}


def test_download_and_revision_pinning(served, tmp_path):
    server, folders, shas = served
    out = run_client(server, tmp_path, {"cache": str(tmp_path / "cache"),
                                        "load": [f"hf-hub:{REPO}", f"hf-hub:{REPO}@{shas[0]}", f"hf-hub:{REPO}@{shas[1]}"]})
    assert out[f"hf-hub:{REPO}"]["digest"] == digest_of(folders[1])  # main is the second commit
    assert out[f"hf-hub:{REPO}@{shas[0]}"]["digest"] == digest_of(folders[0])  # pinned: bit-identical first model
    assert out[f"hf-hub:{REPO}@{shas[1]}"]["digest"] == digest_of(folders[1])
    assert digest_of(folders[0]) != digest_of(folders[1])


def test_registry_entry_pinned_to_a_commit(served, tmp_path):
    server, folders, shas = served
    out = run_client(server, tmp_path, {"cache": str(tmp_path / "cache"), "load": ["pixelcnn-served"],
                                        "entry": entry_spec(folders[0], shas[0])})
    assert out["pixelcnn-served"]["digest"] == digest_of(folders[0])


def test_concurrent_first_loads_share_one_clean_cache(served, tmp_path):
    server, folders, shas = served
    spec = {"cache": str(tmp_path / "cache"), "load": ["pixelcnn-served"], "entry": entry_spec(folders[0], shas[0])}
    procs = [run_client(server, tmp_path, spec, wait=False) for _ in range(4)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out)["pixelcnn-served"])
    assert all(r.get("digest") == digest_of(folders[0]) for r in results), results
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".incomplete")]
    assert leftovers == []


def test_altered_cache_is_detected_and_force_download_repairs_it(served, tmp_path):
    server, folders, shas = served
    spec = {"cache": str(tmp_path / "cache"), "load": ["pixelcnn-served"], "entry": entry_spec(folders[0], shas[0])}
    assert "digest" in run_client(server, tmp_path, spec)["pixelcnn-served"]
    (blob,) = [p for p in (tmp_path / "cache").rglob("model.safetensors")]
    target = blob.resolve()
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    broken = run_client(server, tmp_path, spec)["pixelcnn-served"]
    assert broken["error"].startswith("CheckpointError: sha256 mismatch") and "zoo cache rm pixelcnn-served" in broken["error"]
    repaired = run_client(server, tmp_path, {**spec, "options": {"force_download": True}})["pixelcnn-served"]
    assert repaired["digest"] == digest_of(folders[0])


def test_unknown_repo_and_revision(served, tmp_path):
    server, folders, shas = served
    out = run_client(server, tmp_path, {"cache": str(tmp_path / "cache"),
                                        "load": ["hf-hub:zoo-test/absent", f"hf-hub:{REPO}@{'f' * 40}"]})
    for result in out.values():
        assert result["error"].startswith("WeightsUnavailableError:"), result
