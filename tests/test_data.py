"""Dataset adapters: shared npz files, arbitrary npz paths and torchvision's own classes; every one holds a valid split out of training."""

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
    with pytest.raises(zoo.DatasetError, match="valid split needs examples 55000-59999"):  # 3 training images, not 60,000
        load_dataset("torchvision-mnist", "train", tmp_path)


def test_missing_torchvision_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(zoo.DatasetError, match=r"torchvision MNIST not found.*download=True"):
        load_dataset("torchvision-mnist", "train", tmp_path)
    with pytest.raises(zoo.DatasetError, match="splits"):
        load_dataset("torchvision-mnist", "extra", tmp_path)


def test_npz_path_and_layouts(tmp_path):
    np.savez(tmp_path / "rgb.npz", x_train=np.zeros((2, 8, 8, 3), np.uint8), y_train=np.array([0, 1]))
    x, y = load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "train").tensors
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]
    with pytest.raises(zoo.DatasetError, match=r"no array 'x_valid' \(found \['x_train', 'y_train'\]\)"):
        load_dataset(f"npz:{tmp_path / 'rgb.npz'}", "valid")
    with pytest.raises(zoo.DatasetError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}", "train")


def test_valid_rows_held_out_of_an_npz_train_array(tmp_path):
    from zoo.datasets import NpzImages

    np.savez(tmp_path / "d.npz", x_train=np.arange(10, dtype=np.uint8).reshape(10, 1, 1), y_train=np.arange(10),
             x_test=np.zeros((2, 1, 1), np.uint8))
    adapter = NpzImages("d.npz", ("train", "valid", "test"), valid_from_train=(6, 9))
    assert adapter.load(tmp_path, "valid").tensors[1].tolist() == [6, 7, 8]
    assert adapter.load(tmp_path, "train").tensors[1].tolist() == [0, 1, 2, 3, 4, 5, 9]
    assert len(adapter.load(tmp_path, "test")) == 2
    with pytest.raises(zoo.DatasetError, match="has splits"):
        adapter.load(tmp_path, "extra")


def test_jpeg_archive_leaves_held_out_copies_out_of_train(tmp_path):
    import io
    import tarfile

    from PIL import Image

    from zoo.datasets import JpegImageArchive

    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as archive:
        for split, folder, number in [("train", "cat", 0), ("train", "cat", 1), ("train", "cat", 2), ("train", "dog", 0), ("test", "cat", 0)]:
            buffer = io.BytesIO()
            Image.new("RGB", (4, 4), (number * 60, 0, 0)).save(buffer, format="JPEG")
            info = tarfile.TarInfo(f"{split}/{folder}/{number:04d}.jpg")
            info.size = len(buffer.getvalue())
            archive.addfile(info, io.BytesIO(buffer.getvalue()))
    adapter = JpegImageArchive("a.tar.gz", {"cat": (1, 2)})
    assert load_labels(adapter, tmp_path, "train") == [0, 0, 1] and len(adapter.load(tmp_path, "valid")) == 1
    assert abs(int(adapter.load(tmp_path, "valid").tensors[0][0, 0, 0, 0]) - 60) < 8  # cat/0001.jpg
    assert len(adapter.load(tmp_path, "test")) == 1


def load_labels(adapter, root, split):
    return adapter.load(root, split).tensors[1].tolist()


def test_wav_folder_with_speakers_and_take_split(tmp_path):
    import soundfile

    folder = tmp_path / "clips"
    folder.mkdir()
    for speaker in ("theo", "george"):
        for take in (0, 7, 12):
            stereo = np.stack([np.linspace(-0.5, 0.5, 80), np.zeros(80)], axis=1)
            soundfile.write(folder / f"3_{speaker}_{take}.wav", stereo, 8000, subtype="PCM_16")
    (folder / "notes.txt").write_text("ignored")
    test = load_dataset(f"wav:{folder}", "test")
    assert [(c.speaker, c.path.name) for c in test] == [("george", "3_george_0.wav"), ("theo", "3_theo_0.wav")]
    clip = test[0]
    assert clip.sample_rate == 8000 and clip.waveform.dtype == torch.float32 and clip.waveform.shape == (80,)
    assert abs(float(clip.waveform[0]) + 0.25) < 1e-3  # stereo averaged to mono
    assert [c.path.name for c in load_dataset(f"wav:{folder}", "valid")] == ["3_george_7.wav", "3_theo_7.wav"]  # takes 5-9
    assert [c.path.name for c in load_dataset(f"wav:{folder}", "train")] == ["3_george_12.wav", "3_theo_12.wav"]
    with pytest.raises(zoo.DatasetError, match="splits"):
        load_dataset(f"wav:{folder}", "extra")
    with pytest.raises(zoo.DatasetError, match="not found"):
        load_dataset(f"wav:{tmp_path / 'none'}", "train")


def test_text_file_split(tmp_path):
    """valid the first 5% (held out of nanoGPT's training part), train 5-90%, test = nanogpt-val the last 10%."""
    (tmp_path / "t.txt").write_text("".join(chr(65 + i % 26) for i in range(100)))
    parts = {split: load_dataset(f"text:{tmp_path / 't.txt'}", split) for split in ("train", "valid", "test", "nanogpt-val")}
    assert [len(parts[s]) for s in ("train", "valid", "test")] == [85, 5, 10]
    assert parts["valid"] + parts["train"] + parts["test"] == (tmp_path / "t.txt").read_text() and parts["test"] == parts["nanogpt-val"]
    with pytest.raises(zoo.DatasetError, match="nanogpt-val"):
        load_dataset(f"text:{tmp_path / 't.txt'}", "extra")
