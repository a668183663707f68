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


def _blob(cache, name):
    (link,) = [p for p in cache.rglob(name) if "snapshots" in p.parts]
    return link.resolve()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_is_fetched_again_online_and_refused_offline(served, tmp_path, damage):
    """Registry entries and plain hf-hub: loads alike: every cached file is checked against the Hub's hash."""
    server, folders, shas = served
    entry = {"cache": str(tmp_path / "cache"), "load": ["pixelcnn-served"], "entry": entry_spec(folders[0], shas[0])}
    plain = {"cache": str(tmp_path / "cache"), "load": [f"hf-hub:{REPO}@{shas[0]}"]}
    for spec in (entry, plain):
        assert run_client(server, tmp_path, spec)[spec["load"][0]]["digest"] == digest_of(folders[0])
    for spec in (entry, plain):
        for name in ("model.safetensors", "config.json"):
            blob = _blob(tmp_path / "cache", name)
            data = bytearray(blob.read_bytes())
            if damage == "truncate":
                del data[-10:]
            else:
                data[len(data) // 2] ^= 0x01  # same length, one bit
            blob.write_bytes(bytes(data))
        assert run_client(server, tmp_path, spec)[spec["load"][0]]["digest"] == digest_of(folders[0])  # re-downloaded once
        assert _blob(tmp_path / "cache", "model.safetensors").read_bytes() == (folders[0] / "model.safetensors").read_bytes()
    assert {len(_blob(tmp_path / "cache", n).name) for n in ("model.safetensors", "config.json")} <= {40, 64}  # etags: hashes
    blob = _blob(tmp_path / "cache", "model.safetensors")
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    offline = run_client(server, tmp_path, {**plain, "options": {"local_files_only": True}})[plain["load"][0]]
    assert offline["error"].startswith("CheckpointError: sha256 mismatch for model.safetensors of " + REPO), offline
    assert "cannot be fetched again offline" in offline["error"]


def test_unreachable_endpoint_is_not_called_offline(tmp_path):
    """Nothing listens on the endpoint: one line that names it, at once, no page of retry warnings."""
    import os
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "home"))
    script = "import zoo\ntry:\n    zoo.load('hf-hub:org/repo')\nexcept zoo.ZooError as exc:\n    print(f'{type(exc).__name__}: {exc}')"
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("WeightsUnavailableError: the Hugging Face endpoint http://127.0.0.1:9 is unreachable"), out.stdout
    assert "HF_HUB_OFFLINE=1" not in out.stdout.split(";")[0] and "Retrying" not in out.stderr, out.stderr
    assert time.monotonic() - start < 15


def test_unknown_repo_and_revision(served, tmp_path):
    server, folders, shas = served
    out = run_client(server, tmp_path, {"cache": str(tmp_path / "cache"),
                                        "load": ["hf-hub:zoo-test/absent", f"hf-hub:{REPO}@{'f' * 40}"]})
    for result in out.values():
        assert result["error"].startswith("WeightsUnavailableError:"), result
