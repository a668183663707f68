"""Dataset adapters: each yields examples in the data's natural form.

Images come as integer levels (TensorDataset of ``[N, C, H, W]`` and labels), text as a string,
audio as a list of clips (float waveform, rate, speaker). A model's ``prepare_dataset`` turns
them into training or evaluation batches.

Known dataset names map onto the files of a data root (``--data DIR``, else ``$ZOO_DATA``, else
``../shared/data`` beside a source checkout). Scaling and binarisation belong to the model's data
space (``zoo.image``, ``zoo.audio``, ``zoo.text``), never to these adapters.

Every dataset has a ``valid`` split held out of its training data, so that no training run chooses
anything on test data: binarized MNIST its own ``valid`` array; MNIST the last 5,000 training images;
CIFAR-10 the training images 3,500-3,999 (the last 500 of the exact subset, and their JPEG copies);
text files the first 5% of the text (train 5-90%, test the last 10%, nanoGPT's validation part); FSDD and
audio folders takes 5-9 (test takes 0-4); VCTK utterance numbers 10 mod 20 (test 0 mod 20).
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
from .windows import AudioClip, AudioFile

__all__ = ["DATASETS", "TEST_SPLITS", "CIFAR10_JPEG_VALID_RANKS", "JpegImageArchive", "NpzImages", "TextFile", "VCTKFolder", "WavFolder",
           "default_data_root", "load_dataset", "torchvision_images"]

# Split names that hold test data: Recipe refuses them for training, validation and fine-tuning.
TEST_SPLITS = frozenset({"test", "nanogpt-val"})

MNIST_VALID = (55_000, 60_000)  # the last 5,000 training images
CIFAR10_VALID = (3_500, 4_000)  # canonical training indices: the last 500 of the exact subset's 4,000

# The JPEG archive names each training image train/<class>/NNNN.jpg, NNNN being its rank among the
# canonical training images of its class (verified on the 4,000 exact ones: for every one, the
# nearest JPEG of its class by pixel distance is that file, the runner-up at least 2.8x farther;
# mean absolute error 5.8/255). The held-out canonical images 3,500-3,999 are therefore these
# per-class ranks [lo, hi), left out of cifar10-jpeg's train split.
CIFAR10_JPEG_VALID_RANKS = {
    "airplane": (348, 396), "automobile": (327, 366), "bird": (378, 420), "cat": (337, 384), "deer": (358, 422),
    "dog": (347, 393), "frog": (354, 414), "horse": (341, 385), "ship": (360, 407), "truck": (350, 413),
}


def _held_out(n: int, split: str, valid: tuple[int, int], what: str) -> slice | torch.Tensor:
    """Rows of an ``n``-row training array for ``split``: ``valid`` the range ``[lo, hi)``, ``train`` every other row."""
    lo, hi = valid
    if n < hi:
        raise DatasetError(f"{what} has {n} training examples; its valid split needs examples {lo}-{hi - 1}")
    if split == "valid":
        return slice(lo, hi)
    keep = torch.ones(n, dtype=torch.bool)
    keep[lo:hi] = False
    return keep


@dataclass(frozen=True)
class NpzImages:
    """An ``.npz`` with ``x_<split>`` arrays ``[N, H, W]`` or ``[N, H, W, C]`` of integer levels (``y_<split>`` optional)."""

    filename: str
    splits: tuple[str, ...] | None = None  # None: whatever x_<split> arrays the file has
    valid_from_train: tuple[int, int] | None = None  # rows [lo, hi) of x_train form ``valid``; ``train`` is the rest

    def load(self, root: Path, split: str) -> Dataset:
        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"dataset file {path} not found; expected an .npz with arrays x_<split> (and optionally y_<split>)")
        if self.splits is not None and split not in self.splits:
            raise DatasetError(f"{self.filename} has splits {list(self.splits)}, not {split!r}")
        source = "train" if self.valid_from_train and split in ("train", "valid") else split
        with np.load(path) as archive:
            key = f"x_{source}"
            if key not in archive:
                raise DatasetError(f"{path} has no array {key!r} (found {sorted(archive.files)})")
            x = torch.from_numpy(archive[key])
            y = torch.from_numpy(archive[f"y_{source}"]).long() if f"y_{source}" in archive else None
        if self.valid_from_train and split in ("train", "valid"):
            rows = _held_out(len(x), split, self.valid_from_train, str(path))
            x, y = x[rows], (y[rows] if y is not None else None)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        x = x.contiguous()
        return TensorDataset(x, y) if y is not None else TensorDataset(x)


def torchvision_images(name: str, valid: tuple[int, int]) -> Callable[[Path, str], Dataset]:
    """torchvision's ``MNIST`` / ``CIFAR10`` classes on a user's root folder (no download), as uint8 tensors.

    ``valid`` is the range of training images held out as the ``valid`` split (``train`` excludes it).
    """

    def load(root: Path, split: str) -> Dataset:
        import torchvision

        if split not in ("train", "valid", "test"):
            raise DatasetError(f"torchvision {name} has splits ['train', 'valid', 'test'], not {split!r}")
        try:
            ds = getattr(torchvision.datasets, name)(str(root), train=split != "test", download=False)
        except RuntimeError as exc:
            raise DatasetError(f"torchvision {name} not found under {root} ({exc}); download it with "
                               f"torchvision.datasets.{name}({str(root)!r}, download=True)") from None
        x = torch.as_tensor(np.asarray(ds.data))
        y = torch.as_tensor(np.asarray(ds.targets)).long()
        if split != "test":
            rows = _held_out(len(x), split, valid, f"torchvision {name} under {root}")
            x, y = x[rows], y[rows]
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return TensorDataset(x.contiguous(), y)

    return load


@dataclass(frozen=True)
class TextFile:
    """A plain text file split by position: ``valid`` the first 5%, ``train`` 5-90%, ``test`` the last 10%.

    ``test`` is nanoGPT's validation part (also reachable as ``nanogpt-val``); ``valid`` is a slice
    of nanoGPT's training part, held out here so that runs choose nothing on the reported split. It
    is taken from the start, not from just before ``test``: in tiny-shakespeare the play that fills
    the last 10% begins at about 87%, and holding that part out would leave the test's speakers
    and plot unseen (test 0.2 nats/char worse than with the same model trained on 0-90%, measured).
    """

    filename: str
    valid_to: float = 0.05
    test_from: float = 0.9

    def load(self, root: Path, split: str) -> str:
        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"text file {path} not found; expected a UTF-8 text file")
        bounds = {"train": (self.valid_to, self.test_from), "valid": (0.0, self.valid_to), "test": (self.test_from, 1.0)}
        bounds["nanogpt-val"] = bounds["test"]
        if split not in bounds:
            raise DatasetError(f"a text file has splits {list(bounds)} (valid the first {self.valid_to:.0%}, train to "
                               f"{self.test_from:.0%}, test the rest; nanogpt-val = test), not {split!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not UTF-8 text: {exc}") from None
        lo, hi = bounds[split]
        return text[int(len(text) * lo) : int(len(text) * hi)]


@dataclass(frozen=True)
class WavFolder:
    """A folder of WAV/FLAC files whose names carry the speaker and the split, e.g. FSDD's ``{digit}_{speaker}_{take}.wav``.

    ``pattern`` is a regular expression with named groups ``speaker`` and ``take``; a file whose
    take is in ``test_takes`` (inclusive) belongs to ``test``, one in ``valid_takes`` to ``valid``, every
    other to ``train`` (FSDD: takes 0-4 test, the official split; 5-9 valid; 10-49 train).
    Files are read with soundfile at their own rate; resampling belongs to the model's audio space.
    """

    folder: str
    pattern: str = r"(?P<digit>\d+)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.(wav|flac)"
    test_takes: tuple[int, int] = (0, 4)
    valid_takes: tuple[int, int] = (5, 9)

    def split_of(self, take: int) -> str:
        for name, (lo, hi) in (("test", self.test_takes), ("valid", self.valid_takes)):
            if lo <= take <= hi:
                return name
        return "train"

    def load(self, root: Path, split: str) -> list[AudioClip]:
        import re

        import soundfile

        folder = root / self.folder
        if not folder.is_dir():
            raise DatasetError(f"audio folder {folder} not found; expected WAV/FLAC files named like {self.pattern}")
        if split not in ("train", "valid", "test"):
            raise DatasetError(f"an audio folder has splits ['train', 'valid', 'test'], not {split!r}")
        clips = []
        for path in sorted(folder.iterdir()):
            match = re.fullmatch(self.pattern, path.name)
            if match is None:
                continue
            if self.split_of(int(match["take"])) != split:
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
    ``exclude`` maps a class folder to a range ``[lo, hi)`` of ``train`` file numbers left out of
    ``train`` (the JPEG copies of images held out for validation); they form the ``valid`` split.
    """

    filename: str
    exclude: dict[str, tuple[int, int]] | None = None

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
                folder = "train" if split == "valid" and self.exclude else split
                if not member.isfile() or len(parts) < 3 or parts[-3] != folder or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
                    continue
                if folder == "train" and self._excluded(parts[-2], parts[-1]) != (split == "valid"):
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

    def _excluded(self, folder: str, name: str) -> bool:
        if not self.exclude or folder not in self.exclude:
            return False
        stem = Path(name).stem
        lo, hi = self.exclude[folder]
        return stem.isdigit() and lo <= int(stem) < hi


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
        if split not in ("train", "valid", "test"):
            raise DatasetError(f"vctk has splits ['train', 'valid', 'test'], not {split!r}")
        pattern = re.compile(rf"(?P<speaker>[a-z]+\d+)_(?P<utt>\d+)_{self.mic}\.flac")
        files = []
        for path in sorted(audio.glob(f"*/*_{self.mic}.flac")):
            match = pattern.fullmatch(path.name)
            if match is None or not (text / match["speaker"] / f"{match['speaker']}_{match['utt']}.txt").is_file():
                continue
            rest = int(match["utt"]) % self.test_every
            if {0: "test", self.test_every // 2: "valid"}.get(rest, "train") != split:
                continue
            info = soundfile.info(str(path))
            files.append(AudioFile(path, int(info.samplerate), int(info.frames), match["speaker"]))
        if not files:
            raise DatasetError(f"no VCTK utterances with transcripts under {audio} for split {split!r}")
        return files


DATASETS: dict[str, Callable[[Path, str], Any]] = {
    "binarized-mnist": NpzImages("binarized_mnist.npz", ("train", "valid", "test")).load,
    "mnist": NpzImages("mnist.npz", ("train", "valid", "test"), MNIST_VALID).load,
    "cifar10-subset": NpzImages("cifar10_lossless_subset.npz", ("train", "valid", "test"), CIFAR10_VALID).load,
    "cifar10-jpeg": JpegImageArchive("cifar10_jpeg.tar.gz", CIFAR10_JPEG_VALID_RANKS).load,
    "torchvision-mnist": torchvision_images("MNIST", MNIST_VALID),
    "torchvision-cifar10": torchvision_images("CIFAR10", CIFAR10_VALID),
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
