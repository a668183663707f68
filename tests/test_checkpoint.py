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


def test_save_replaces_an_existing_folder_atomically(tiny_folder):
    other = tiny_pixelcnn(output_hidden=24)
    other.save_pretrained(tiny_folder)
    assert zoo.load(f"local-dir:{tiny_folder}").config.output_hidden == 24
    assert [p.name for p in tiny_folder.parent.iterdir()] == ["tiny"]  # no staging or backup left behind


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
