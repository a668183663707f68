"""Dataset adapters: each yields examples in the data's natural form.

Images come as integer levels (TensorDataset of ``[N, C, H, W]`` and labels), text as a string,
audio as a list of clips (float waveform, rate, speaker). A model's ``prepare_dataset`` turns
them into training or evaluation batches.

Known dataset names map onto the files of a data root (``--data DIR``, else ``$ZOO_DATA``, else
``../shared/data`` beside a source checkout). Scaling and binarisation belong to the model's data
space (zoo/spaces.py), never to these adapters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .errors import DatasetError


@dataclass(frozen=True)
class NpzImages:
    """An ``.npz`` with ``x_<split>`` arrays ``[N, H, W]`` or ``[N, H, W, C]`` of integer levels (``y_<split>`` optional)."""

    filename: str
    splits: tuple[str, ...] | None = None  # None: whatever x_<split> arrays the file has

    def load(self, root: Path, split: str) -> Dataset:
        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"dataset file {path} not found; expected an .npz with arrays x_<split> (and optionally y_<split>)")
        if self.splits is not None and split not in self.splits:
            raise DatasetError(f"{self.filename} has splits {list(self.splits)}, not {split!r}")
        with np.load(path) as archive:
            key = f"x_{split}"
            if key not in archive:
                raise DatasetError(f"{path} has no array {key!r} (found {sorted(archive.files)})")
            x = torch.from_numpy(archive[key])
            y = torch.from_numpy(archive[f"y_{split}"]).long() if f"y_{split}" in archive else None
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        x = x.contiguous()
        return TensorDataset(x, y) if y is not None else TensorDataset(x)


def torchvision_images(name: str) -> Callable[[Path, str], Dataset]:
    """torchvision's ``MNIST`` / ``CIFAR10`` classes on a user's root folder (no download), as uint8 tensors."""

    def load(root: Path, split: str) -> Dataset:
        import torchvision

        if split not in ("train", "test"):
            raise DatasetError(f"torchvision {name} has splits ['train', 'test'], not {split!r}")
        try:
            ds = getattr(torchvision.datasets, name)(str(root), train=split == "train", download=False)
        except RuntimeError as exc:
            raise DatasetError(f"torchvision {name} not found under {root} ({exc}); download it with "
                               f"torchvision.datasets.{name}({str(root)!r}, download=True)") from None
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return TensorDataset(x.contiguous(), torch.as_tensor(np.asarray(ds.targets)).long())

    return load


@dataclass(frozen=True)
class TextFile:
    """A plain text file split by position: the first ``train_fraction`` is ``train``, the rest ``valid`` (nanoGPT's split)."""

    filename: str
    train_fraction: float = 0.9

    def load(self, root: Path, split: str) -> str:
        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"text file {path} not found; expected a UTF-8 text file")
        if split not in ("train", "valid"):
            raise DatasetError(f"a text file has splits ['train', 'valid'] (first {self.train_fraction:.0%} / the rest), not {split!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not UTF-8 text: {exc}") from None
        cut = int(len(text) * self.train_fraction)
        return text[:cut] if split == "train" else text[cut:]


class TextWindows(Dataset):
    """Every window of ``length + 1`` tokens of a token stream (training examples, nanoGPT style).

    Example ``i`` starts at token ``i``; one in ten starts with the begin-of-text token instead of
    its first character, so the model also learns to start a text, as scoring and sampling do.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int) -> None:
        if len(ids) <= length + 1:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one training window of {length + 1}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) - self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] + torch.arange(self.length + 1)]
        rows[idx % 10 == 0, 0] = self.bos
        return (rows,)


class TextChunks(Dataset):
    """Consecutive non-overlapping chunks of ``length`` tokens, each preceded by begin-of-text (evaluation).

    A last partial chunk (fewer than ``length`` tokens) is left out so every batch is rectangular.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int) -> None:
        if len(ids) < length:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one evaluation chunk of {length}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) // self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] * self.length + torch.arange(self.length)]
        return (torch.cat([torch.full((len(idx), 1), self.bos), rows], dim=1),)


@dataclass(frozen=True)
class AudioClip:
    waveform: torch.Tensor  # float32 [T] in [-1, 1]
    sample_rate: int
    speaker: str
    path: Path


@dataclass(frozen=True)
class WavFolder:
    """A folder of WAV/FLAC files whose names carry the speaker and the split, e.g. FSDD's ``{digit}_{speaker}_{take}.wav``.

    ``pattern`` is a regular expression with named groups ``speaker`` and ``take``; a file whose
    take is in ``test_takes`` belongs to ``test``, every other to ``train`` (FSDD: takes 0-4 test).
    Files are read with soundfile at their own rate; resampling belongs to the model's audio space.
    """

    folder: str
    pattern: str = r"(?P<digit>\d+)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.(wav|flac)"
    test_takes: tuple[int, int] = (0, 4)

    def load(self, root: Path, split: str) -> list[AudioClip]:
        import re

        import soundfile

        folder = root / self.folder
        if not folder.is_dir():
            raise DatasetError(f"audio folder {folder} not found; expected WAV/FLAC files named like {self.pattern}")
        if split not in ("train", "test"):
            raise DatasetError(f"an audio folder has splits ['train', 'test'], not {split!r}")
        clips = []
        lo, hi = self.test_takes
        for path in sorted(folder.iterdir()):
            match = re.fullmatch(self.pattern, path.name)
            if match is None:
                continue
            if (lo <= int(match["take"]) <= hi) != (split == "test"):
                continue
            try:
                data, rate = soundfile.read(path, dtype="float32", always_2d=True)
            except (RuntimeError, soundfile.LibsndfileError) as exc:
                raise DatasetError(f"{path} is not a readable audio file: {exc}") from None
            clips.append(AudioClip(torch.from_numpy(data.mean(axis=1)), rate, match["speaker"], path))
        if not clips:
            raise DatasetError(f"no audio files in {folder} match {self.pattern} for split {split!r}")
        return clips


DATASETS: dict[str, Callable[[Path, str], Any]] = {
    "binarized-mnist": NpzImages("binarized_mnist.npz", ("train", "valid", "test")).load,
    "mnist": NpzImages("mnist.npz", ("train", "test")).load,
    "cifar10-subset": NpzImages("cifar10_lossless_subset.npz", ("train", "test")).load,
    "torchvision-mnist": torchvision_images("MNIST"),
    "torchvision-cifar10": torchvision_images("CIFAR10"),
    "tinyshakespeare": TextFile("tinyshakespeare.txt").load,
    "fsdd": WavFolder("fsdd/recordings").load,
}


def default_data_root() -> Path:
    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"])
    checkout = Path(__file__).resolve().parent.parent
    return checkout.parent / "shared" / "data"


def load_dataset(name: str, split: str, root: str | os.PathLike[str] | None = None) -> Any:
    """Examples of dataset ``name`` for ``split``: a key of :data:`DATASETS` read from ``root``, or ``npz:PATH``."""
    if name.startswith("npz:"):
        path = Path(name.removeprefix("npz:")).expanduser()
        return NpzImages(path.name).load(path.parent, split)
    if name.startswith("wav:"):
        path = Path(name.removeprefix("wav:")).expanduser()
        return WavFolder(path.name).load(path.parent, split)
    if name.startswith("text:"):
        path = Path(name.removeprefix("text:")).expanduser()
        return TextFile(path.name).load(path.parent, split)
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}, npz:PATH, text:PATH or wav:FOLDER")
    root = Path(root) if root is not None else default_data_root()
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist; pass --data DIR or set ZOO_DATA")
    return DATASETS[name](root, split)
