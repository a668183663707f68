"""Dataset adapters: shared npz files, arbitrary npz paths and torchvision's own classes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

import zoo
from zoo.datasets import load_dataset


def write_idx(path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.array([7, 2, 1]), 2049)
    ds = load_dataset("torchvision-mnist", "test", tmp_path)
    x, y = ds.tensors
    assert x.dtype == torch.uint8 and x.shape == (3, 1, 28, 28)
    assert torch.equal(x[:, 0], torch.from_numpy(images.astype(np.uint8))) and y.tolist() == [7, 2, 1]


def test_missing_torchvision_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(zoo.DatasetError, match=r"torchvision MNIST not found.*download=True"):
        load_dataset("torchvision-mnist", "train", tmp_path)
    with pytest.raises(zoo.DatasetError, match="splits"):
        load_dataset("torchvision-mnist", "valid", tmp_path)


def test_npz_path_and_layouts(tmp_path):
    np.savez(tmp_path / "rgb.npz", x_train=np.zeros((2, 8, 8, 3), np.uint8), y_train=np.array([0, 1]))
    x, y = load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "train").tensors
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]
    with pytest.raises(zoo.DatasetError, match=r"no array 'x_valid' \(found \['x_train', 'y_train'\]\)"):
        load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "valid")
    with pytest.raises(zoo.DatasetError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}", "train")


def test_shared_binarized_mnist_when_present():
    from zoo.datasets import default_data_root

    if not (default_data_root() / "binarized_mnist.npz").is_file():
        pytest.skip("../shared/data is not beside this checkout")
    x, = load_dataset("binarized-mnist", "valid").tensors
    assert x.shape == (10000, 1, 28, 28) and int(x.max()) == 1


def test_wav_folder_with_speakers_and_take_split(tmp_path):
    import soundfile

    folder = tmp_path / "clips"
    folder.mkdir()
    for speaker in ("theo", "george"):
        for take in (0, 7):
            stereo = np.stack([np.linspace(-0.5, 0.5, 80), np.zeros(80)], axis=1)
            soundfile.write(folder / f"3_{speaker}_{take}.wav", stereo, 8000, subtype="PCM_16")
    (folder / "notes.txt").write_text("ignored")
    test = load_dataset(f"wav:{folder}", "test")
    assert [(c.speaker, c.path.name) for c in test] == [("george", "3_george_0.wav"), ("theo", "3_theo_0.wav")]
    clip = test[0]
    assert clip.sample_rate == 8000 and clip.waveform.dtype == torch.float32 and clip.waveform.shape == (80,)
    assert abs(float(clip.waveform[0]) + 0.25) < 1e-3  # stereo averaged to mono
    assert len(load_dataset(f"wav:{folder}", "train")) == 2
    with pytest.raises(zoo.DatasetError, match="splits"):
        load_dataset(f"wav:{folder}", "valid")
    with pytest.raises(zoo.DatasetError, match="not found"):
        load_dataset(f"wav:{tmp_path / 'none'}", "train")


def test_text_file_split(tmp_path):
    (tmp_path / "t.txt").write_text("0123456789")
    assert load_dataset(f"text:{tmp_path / 't.txt'}", "train") == "012345678"
    assert load_dataset(f"text:{tmp_path / 't.txt'}", "valid") == "9"
