"""The checkpoint format: exact round trips and a clear error for every way a folder can be wrong."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.checkpoint import sha256_file

from .conftest import tiny_pixelcnn


def test_round_trip_is_exact(tiny_binary, tiny_folder):
    assert sorted(p.name for p in tiny_folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = zoo.load(f"local-dir:{tiny_folder}")
    assert type(loaded) is type(tiny_binary) and loaded.config == tiny_binary.config
    for (k, a), (k2, b) in zip(tiny_binary.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = (torch.rand(4, 1, 4, 4) > 0.5).to(torch.uint8)
    assert torch.equal(loaded.log_prob(x), tiny_binary.log_prob(x))
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["family"] == "pixelcnn" and config["zoo_format"] == 1
    card = (tiny_folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: zoo" in card


def test_save_replaces_an_existing_checkpoint_only_when_asked(tiny_folder):
    other = tiny_pixelcnn(output_hidden=24)
    with pytest.raises(zoo.CheckpointError, match="already holds a zoo checkpoint; pass overwrite=True"):
        other.save_pretrained(tiny_folder)
    other.save_pretrained(tiny_folder, overwrite=True)
    assert zoo.load(f"local-dir:{tiny_folder}").config.output_hidden == 24
    assert [p.name for p in tiny_folder.parent.iterdir()] == ["tiny"]  # no staging or backup left behind


def test_save_never_deletes_what_zoo_did_not_write(tmp_path, tiny_binary, tiny_folder):
    user = tmp_path / "thesis"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.tex").write_text("chapter 1")
    (user / "sub" / "data.csv").write_text("1,2")
    for overwrite in (False, True):
        with pytest.raises(zoo.CheckpointError, match=r"not a zoo checkpoint.*never deletes"):
            tiny_binary.save_pretrained(user, overwrite=overwrite)
    assert (user / "thesis.tex").read_text() == "chapter 1" and (user / "sub" / "data.csv").read_text() == "1,2"
    (tiny_folder / "notes.txt").write_text("mine")  # a checkpoint with a user's file in it
    with pytest.raises(zoo.CheckpointError, match=r"notes.txt"):
        tiny_binary.save_pretrained(tiny_folder, overwrite=True)
    assert (tiny_folder / "notes.txt").read_text() == "mine"
    afile = tmp_path / "a-file"
    afile.write_text("keep")
    with pytest.raises(zoo.CheckpointError, match="exists and is not a folder"):
        tiny_binary.save_pretrained(afile, overwrite=True)
    assert afile.read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    tiny_binary.save_pretrained(empty)  # an empty folder loses nothing
    assert (empty / "config.json").is_file()


def test_saved_files_honour_the_umask(tmp_path, tiny_binary):
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = tiny_binary.save_pretrained(tmp_path / "perm")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}


def test_stale_staging_of_a_dead_process_is_cleaned(tmp_path, tiny_binary, tiny_folder):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".tiny.zoo-staging-{pid}-abcd"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    tiny_binary.save_pretrained(tiny_folder, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_failed_save_leaves_no_partial_folder(tmp_path, tiny_binary, monkeypatch):
    import zoo.checkpoint

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zoo.checkpoint, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        tiny_binary.save_pretrained(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _rewrite_weights(folder, mutate):
    tensors = load_file(folder / "model.safetensors")
    mutate(tensors)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt", "family": "pixelcnn"})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.pop("input.weight"), r"missing keys \['input.weight'\]"),
        (lambda t: t.update(extra=torch.zeros(1)), r"unexpected keys \['extra'\]"),
        (lambda t: t.update({"input.bias": torch.zeros(3)}), r"shape mismatch.*input.bias"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_mismatched_weights(tiny_folder, mutate, message):
    _rewrite_weights(tiny_folder, mutate)
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.load(f"local-dir:{tiny_folder}")


def test_weights_of_another_family(tiny_folder):
    tensors = load_file(tiny_folder / "model.safetensors")
    save_file(tensors, tiny_folder / "model.safetensors", metadata={"format": "pt", "family": "wavenet"})
    with pytest.raises(zoo.CheckpointError, match="family 'wavenet' but its config says 'pixelcnn'"):
        zoo.load(f"local-dir:{tiny_folder}")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(zoo_format=7), "zoo_format 7"),
        (lambda c: c.update(family="nonesuch"), "unknown family 'nonesuch'"),
        (lambda c: c["config"].update(depth=3), "unknown pixelcnn config field"),
        (lambda c: c.pop("config"), "'family', 'config' and 'zoo_format'"),
    ],
    ids=["format", "family", "field", "shape"],
)
def test_bad_config(tiny_folder, edit, message):
    path = tiny_folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.load(f"local-dir:{tiny_folder}")


def test_non_utf8_config_is_a_checkpoint_error(tiny_folder):
    (tiny_folder / "config.json").write_bytes(b'{"family": "pixelcnn\xff"}')
    with pytest.raises(zoo.CheckpointError, match="is not UTF-8 text"):
        zoo.load(f"local-dir:{tiny_folder}")


def test_entry_filename_is_honoured(isolated_registry, tiny_binary, tmp_path):
    folder = tiny_binary.save_pretrained(tmp_path / "renamed")
    (folder / "model.safetensors").rename(folder / "weights-v2.safetensors")
    entry = zoo.Entry("pixelcnn-renamed", "pixelcnn", json.loads((folder / "config.json").read_text())["config"], bundled=True,
                      filename="weights-v2.safetensors", sha256=sha256_file(folder / "weights-v2.safetensors"))
    entry.local_dir = folder
    isolated_registry.add_entry(entry)
    loaded = zoo.load("pixelcnn-renamed")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), tiny_binary.state_dict().values(), strict=True))


BOMB = """
import json, resource, shutil, sys
import zoo
base = sys.argv[1]
for i, fields in enumerate(json.loads(sys.argv[2])):
    folder = f"{base}-{i}"
    shutil.copytree(base, folder)
    config = json.load(open(folder + "/config.json"))
    config["config"].update(fields)
    json.dump(config, open(folder + "/config.json", "w"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        zoo.load("local-dir:" + folder)
        print(json.dumps(["LOADED"]))
    except zoo.CheckpointError as exc:
        print(json.dumps(["REFUSED", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, str(exc)]))
"""


def test_malicious_config_fails_fast_with_bounded_memory(tiny_folder):
    """Configs far larger than their (4 KB) weights file, wide or deep: refused from the header, never allocated."""
    import subprocess
    import sys
    import time

    assert (tiny_folder / "model.safetensors").stat().st_size < 64_000
    cases = [{"hidden": 200000, "output_hidden": 200000}, {"n_residual": 1000000}]
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", BOMB, str(tiny_folder), json.dumps(cases)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in out.stdout.splitlines():
        verdict, grown_mb, message = json.loads(line)
        assert verdict == "REFUSED" and grown_mb < 100, line  # the real networks would take 300 GB / 20 GB
        assert "does not match" in message or "far more tensors" in message, message
    assert len(out.stdout.splitlines()) == 2 and time.monotonic() - start < 60


def test_corrupt_and_truncated_weights(tiny_folder):
    path = tiny_folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(zoo.CheckpointError, match="not a readable safetensors file"):
        zoo.load(f"local-dir:{tiny_folder}")
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(zoo.CheckpointError, match="not a readable safetensors file"):
        zoo.load(f"local-dir:{tiny_folder}")


def test_missing_files(tmp_path, tiny_folder):
    with pytest.raises(zoo.CheckpointError, match="has no config.json"):
        zoo.load(f"local-dir:{tmp_path / 'absent'}")
    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(zoo.CheckpointError, match="weights file .* is missing"):
        zoo.load(f"local-dir:{tiny_folder}")


def test_sha256_is_verified_before_loading(tiny_binary, tiny_folder):
    from zoo.checkpoint import load_weights

    digest = sha256_file(tiny_folder / "model.safetensors")
    load_weights(tiny_binary, tiny_folder / "model.safetensors", family="pixelcnn", sha256=digest)
    with pytest.raises(zoo.CheckpointError, match=f"sha256 mismatch .*expected {'0' * 64}, got {digest}"):
        load_weights(tiny_binary, tiny_folder / "model.safetensors", family="pixelcnn", sha256="0" * 64)


def test_load_moves_to_device_and_dtype(tiny_folder):
    model = zoo.load(f"local-dir:{tiny_folder}", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    x = (torch.rand(2, 1, 4, 4) > 0.5).to(torch.uint8)
    assert model.log_prob(x).dtype == torch.float32


SAVER = """
import os, signal, sys
import torch
import zoo
import zoo.checkpoint as ck
target, mode = sys.argv[1], sys.argv[2]
models = [zoo.load("local-dir:" + sys.argv[3]), zoo.load("local-dir:" + sys.argv[4])]
if mode == "after-exchange":  # killed after the swap, before the old copy is deleted
    real = ck._exchange
    ck._exchange = lambda a, b: (real(a, b), os.kill(os.getpid(), signal.SIGKILL))
elif mode == "between-renames":  # the fallback without an atomic exchange: killed between its two renames
    ck._exchange = lambda a, b: False
    real_rename = os.rename
    def rename(a, b):
        real_rename(a, b)
        if str(a) == target:
            os.kill(os.getpid(), signal.SIGKILL)
    ck.os.rename = rename
print("ready", flush=True)
i = 0
while True:
    models[i % 2].save_pretrained(target, overwrite=True)
    i += 1
"""


def _weights(folder):
    return load_file(folder / "model.safetensors")


def test_killed_saves_never_leave_the_name_without_a_checkpoint(tmp_path, tiny_folder):
    """SIGKILL at random points of a save loop, after the exchange and between the fallback's renames:
    the name always holds one whole checkpoint (old or new), and the next save tidies what was left."""
    import random
    import shutil
    import signal
    import subprocess
    import sys
    import time

    other = tmp_path / "other"
    tiny_pixelcnn(output_hidden=24).save_pretrained(other)
    target = tmp_path / "target"
    shutil.copytree(tiny_folder, target)
    versions = [_weights(tiny_folder), _weights(other)]
    rng = random.Random(0)

    def run(mode, delay):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target), mode, str(tiny_folder), str(other)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        if mode == "random":
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL

    for _ in range(8):
        run("random", rng.uniform(0.0, 0.4))
        got = _weights(target)  # loads whole: never missing, never half written
        assert any(set(got) == set(v) and all(torch.equal(got[n], v[n]) for n in v) for v in versions)
        zoo.load(f"local-dir:{target}")
    run("after-exchange", 0)
    zoo.load(f"local-dir:{target}")
    assert any(p.name.startswith(".target.zoo-staging-") for p in tmp_path.iterdir())  # the old copy, left by the kill
    tiny_pixelcnn().save_pretrained(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "target", "tiny"]
    run("between-renames", 0)
    assert not target.exists()  # the fallback's one-rename window, which the atomic exchange closes
    tiny_pixelcnn().save_pretrained(target, overwrite=True)  # the next save puts the old one back first, then replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "target", "tiny"]
    zoo.load(f"local-dir:{target}")
