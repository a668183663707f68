"""Dataset adapters: each yields examples in the data's natural form.

Images come as integer levels (TensorDataset of ``[N, C, H, W]`` and labels), text as a string,
audio as a list of clips (float waveform, rate, speaker). A model's ``prepare_dataset`` turns
them into training or evaluation batches.

Known dataset names map onto the files of a data root (``--data DIR``, else ``$ZOO_DATA``, else
``../shared/data`` beside a source checkout). Scaling and binarisation belong to the model's data
space (``zoo.image``, ``zoo.audio``, ``zoo.text``), never to these adapters.
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

from .audio import AudioClip, AudioFile
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


@dataclass(frozen=True)
class JpegImageArchive:
    """A ``.tar.gz`` of ``<split>/<class>/<file>.jpg`` images (e.g. CIFAR-10 as JPEG), decoded into uint8 tensors.

    Classes are the sorted folder names; the label tensor holds their index. JPEG is lossy: a model
    scored on these pixels is not comparable with the literature (use exact pixels for reports).
    """

    filename: str

    def load(self, root: Path, split: str) -> Dataset:
        import io
        import tarfile

        from PIL import Image

        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"image archive {path} not found; expected a .tar.gz of <split>/<class>/<name>.jpg")
        images: list[tuple[str, str, np.ndarray]] = []
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 3 or parts[-3] != split or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                    continue
                data = archive.extractfile(member).read()
                images.append((parts[-2], parts[-1], np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
        if not images:
            raise DatasetError(f"{path} has no images under {split}/<class>/")
        images.sort(key=lambda item: (item[0], item[1]))
        classes = sorted({c for c, _, _ in images})
        x = torch.from_numpy(np.stack([a for _, _, a in images])).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor([classes.index(c) for c, _, _ in images])
        return TensorDataset(x, y)


@dataclass(frozen=True)
class VCTKFolder:
    """VCTK 0.92 in the layout of torchaudio's ``VCTK_092``, read with soundfile (no FFmpeg needed).

    ``ROOT/VCTK-Corpus-0.92/`` (or ``ROOT`` itself) holds ``wav48_silence_trimmed/pXXX/pXXX_YYY_mic1.flac``
    and ``txt/pXXX/pXXX_YYY.txt``. Like torchaudio, utterances without a transcript are skipped (all of
    p315), leaving 109 speakers. VCTK has no official split: utterance numbers divisible by
    ``test_every`` form ``test`` (5%, every speaker represented), the rest ``train``.
    """

    mic: str = "mic1"
    test_every: int = 20

    def load(self, root: Path, split: str) -> list[AudioFile]:
        import re

        import soundfile

        base = root / "VCTK-Corpus-0.92" if (root / "VCTK-Corpus-0.92").is_dir() else root
        audio, text = base / "wav48_silence_trimmed", base / "txt"
        if not audio.is_dir():
            raise DatasetError(f"VCTK not found: {audio} is missing; expected VCTK-Corpus-0.92/wav48_silence_trimmed/pXXX/pXXX_YYY_{self.mic}.flac "
                               "(torchaudio.datasets.VCTK_092 layout)")
        if split not in ("train", "test"):
            raise DatasetError(f"vctk has splits ['train', 'test'], not {split!r}")
        pattern = re.compile(rf"(?P<speaker>[a-z]+\d+)_(?P<utt>\d+)_{self.mic}\.flac")
        files = []
        for path in sorted(audio.glob(f"*/*_{self.mic}.flac")):
            match = pattern.fullmatch(path.name)
            if match is None or not (text / match["speaker"] / f"{match['speaker']}_{match['utt']}.txt").is_file():
                continue
            if (int(match["utt"]) % self.test_every == 0) != (split == "test"):
                continue
            info = soundfile.info(str(path))
            files.append(AudioFile(path, int(info.samplerate), int(info.frames), match["speaker"]))
        if not files:
            raise DatasetError(f"no VCTK utterances with transcripts under {audio} for split {split!r}")
        return files


DATASETS: dict[str, Callable[[Path, str], Any]] = {
    "binarized-mnist": NpzImages("binarized_mnist.npz", ("train", "valid", "test")).load,
    "mnist": NpzImages("mnist.npz", ("train", "test")).load,
    "cifar10-subset": NpzImages("cifar10_lossless_subset.npz", ("train", "test")).load,
    "cifar10-jpeg": JpegImageArchive("cifar10_jpeg.tar.gz").load,
    "torchvision-mnist": torchvision_images("MNIST"),
    "torchvision-cifar10": torchvision_images("CIFAR10"),
    "tinyshakespeare": TextFile("tinyshakespeare.txt").load,
    "fsdd": WavFolder("fsdd/recordings").load,
    "vctk": VCTKFolder().load,
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
