"""Data spaces: the conversion between data in its natural form and what a network consumes.

A space validates user data (shape, dtype, range) with errors that say what is accepted, and maps
it to the network's input domain. Datasets and models share these, so binarisation or scaling is
defined in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InvalidInputError


@dataclass(frozen=True)
class ImageSpace:
    """Images as integer tensors ``[N, C, H, W]`` with values ``0 .. levels-1``.

    ``levels=2`` is a binary image (values 0 and 1); ``levels=256`` an 8-bit image.
    """

    channels: int
    height: int
    width: int
    levels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def dims(self) -> int:
        return self.channels * self.height * self.width

    def describe(self) -> str:
        kind = "binary {0,1}" if self.levels == 2 else f"uint8 0..{self.levels - 1}"
        return f"[N, {self.channels}, {self.height}, {self.width}] {kind}"

    def validate(self, x: torch.Tensor, *, name: str = "x") -> torch.Tensor:
        """Check ``x`` and return it as a ``long`` tensor of levels, batch dimension added if absent."""
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"{name} must be a torch.Tensor of shape {self.describe()}, got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool and self.levels != 2:
            raise InvalidInputError(
                f"{name} must hold integer levels (uint8 or long), got dtype {x.dtype}; "
                f"this model expects {self.describe()} (convert float images with (x * {self.levels - 1}).round().to(torch.uint8))"
            )
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise InvalidInputError(f"{name} has shape {list(x.shape)}; this model expects {self.describe()}")
        x = x.long()
        if x.numel():
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.levels:
                raise InvalidInputError(
                    f"{name} has values in [{lo}, {hi}]; this model expects levels 0..{self.levels - 1} ({self.describe()})"
                )
        return x

    def to_unit(self, levels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Map integer levels to floats in [-1, 1], the networks' input domain."""
        return levels.to(dtype) * (2.0 / (self.levels - 1)) - 1.0

    def to_uint8(self, levels: torch.Tensor) -> torch.Tensor:
        """Levels as displayable 8-bit intensities (binary 1 becomes 255)."""
        return (levels.long() * (255 // (self.levels - 1))).to(torch.uint8)

    def from_uint8(self, pixels: torch.Tensor, *, binarize: bool = False) -> torch.Tensor:
        """8-bit intensities as this space's levels; for binary spaces the pixels must be 0/255 unless ``binarize``."""
        pixels = pixels.long()
        if self.levels == 256:
            return pixels
        if self.levels == 2:
            if binarize:
                return (pixels >= 128).long()
            distinct = torch.unique(pixels)
            if not bool(((distinct == 0) | (distinct == 255)).all()):
                raise InvalidInputError(
                    f"this model takes binary images (pixel values 0 and 255), got {distinct.numel()} distinct values; "
                    "threshold the image first (CLI: --binarize)"
                )
            return (pixels == 255).long()
        return (pixels * (self.levels - 1) + 127) // 255


@dataclass(frozen=True)
class CharSpace:
    """Text as characters of a fixed vocabulary. Token ``len(vocab)`` is the begin-of-text marker (BOS)."""

    vocab: str

    def __post_init__(self) -> None:
        if len(set(self.vocab)) != len(self.vocab) or not self.vocab:
            raise ValueError("a character vocabulary must be a non-empty string of distinct characters")

    @property
    def size(self) -> int:
        return len(self.vocab)

    @property
    def bos(self) -> int:
        return len(self.vocab)

    def _index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.vocab)}

    def encode(self, text: str, *, name: str = "text") -> torch.Tensor:
        """Token ids ``LongTensor[len(text)]``; characters outside the vocabulary are an error that lists them."""
        if not isinstance(text, str):
            raise InvalidInputError(f"{name} must be a str or a list of str, got {type(text).__name__}")
        index = self._index()
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise InvalidInputError(
                f"{name} has characters outside this model's vocabulary: {''.join(unknown)!r} ({len(unknown)} distinct); "
                f"accepted: {self.vocab!r}"
            )
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.vocab[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids) if i < len(self.vocab))

    @classmethod
    def from_text(cls, text: str) -> CharSpace:
        return cls("".join(sorted(set(text))))


AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class AudioSpace:
    """Mono waveforms as float ``[N, T]`` in [-1, 1] at ``sample_rate``, quantised to ``levels`` integer codes.

    ``encoding="mu-law"`` companding uses torchaudio's mu-law functions (256 codes in WaveNet);
    ``"linear"`` spaces the codes uniformly over [-1, 1] (65536 codes: 16-bit audio).
    """

    sample_rate: int
    levels: int = 256
    encoding: str = "mu-law"

    def __post_init__(self) -> None:
        if self.encoding not in ("mu-law", "linear"):
            raise ValueError(f"audio encoding must be 'mu-law' or 'linear', got {self.encoding!r}")

    def describe(self) -> str:
        return f"a float waveform [N, T] or [T] in [-1, 1], mono, at {self.sample_rate} Hz"

    def validate(self, x: object, *, name: str = "waveform", sample_rate: int | None = None, resample: bool = False) -> torch.Tensor:
        """Check ``x`` and return it as float32 ``[N, T]`` at this space's rate.

        A different ``sample_rate`` is an error unless ``resample=True`` (torchaudio's resampler):
        silently scoring audio at the wrong rate would give meaningless numbers.
        """
        try:
            import numpy as np

            if isinstance(x, np.ndarray):
                x = torch.from_numpy(x)
        except ImportError:  # pragma: no cover - numpy ships with torch wheels
            pass
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"{name} must be a torch.Tensor: {self.describe()}; got {type(x).__name__}")
        if not x.dtype.is_floating_point:
            hint = " (convert 16-bit PCM with x.float() / 32768)" if x.dtype == torch.int16 else ""
            raise InvalidInputError(f"{name} has dtype {x.dtype}; this model takes {self.describe()}{hint}")
        if x.dim() == 3 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() == 3:
            raise InvalidInputError(
                f"{name} has {x.shape[1]} channels (shape {list(x.shape)}); this model takes mono audio: "
                f"mix down with x.mean(dim=1), or pass {self.describe()}"
            )
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2:
            raise InvalidInputError(f"{name} has shape {list(x.shape)}; this model takes {self.describe()}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InvalidInputError(f"{name} is empty (shape {list(x.shape)}); this model takes {self.describe()}")
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            raise InvalidInputError(f"{name} has {int(bad.sum())} NaN or infinite value(s); this model takes {self.describe()}")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1 or hi > 1:
            raise InvalidInputError(
                f"{name} has values in [{lo:.4g}, {hi:.4g}]; this model takes {self.describe()} "
                "(normalise or clip float audio; scale 16-bit PCM by 1/32768)"
            )
        x = x.float()
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            if not resample:
                raise InvalidInputError(
                    f"{name} is at {sample_rate} Hz; this model takes {self.sample_rate} Hz audio: "
                    "pass resample=True to convert it with torchaudio (the CLI resamples files automatically)"
                )
            x = self.resample(x, int(sample_rate))
        return x.contiguous()

    def resample(self, x: torch.Tensor, rate: int) -> torch.Tensor:
        """``x`` (float, last dimension time) converted from ``rate`` to this space's rate, kept inside [-1, 1]."""
        if rate == self.sample_rate:
            return x
        import torchaudio.functional as AF

        return AF.resample(x.float(), rate, self.sample_rate).clamp(-1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes ``0 .. levels-1`` (long) of a float waveform in [-1, 1]."""
        if self.encoding == "mu-law":
            import torchaudio.functional as AF

            return AF.mu_law_encoding(x.float(), self.levels).clamp(0, self.levels - 1)
        return ((x.float() + 1) * ((self.levels - 1) / 2)).round().long().clamp(0, self.levels - 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """The float waveform (float32, in [-1, 1]) of integer codes."""
        if self.encoding == "mu-law":
            import torchaudio.functional as AF

            return AF.mu_law_decoding(codes.long(), self.levels).float().clamp(-1, 1)
        return codes.float() * (2.0 / (self.levels - 1)) - 1.0

    def marginal_entropy(self, codes: torch.Tensor | list[torch.Tensor]) -> float:
        """Entropy in bits of the codes' marginal (histogram) distribution.

        The bits/sample a model that ignores all context would need: a trained model must score far below it.
        """
        flat = torch.cat([c.reshape(-1) for c in codes]) if isinstance(codes, list) else codes.reshape(-1)
        counts = torch.bincount(flat.long(), minlength=self.levels).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log2()).sum())


def read_audio(path: object) -> tuple[torch.Tensor, int]:
    """A WAV/FLAC file as float32 ``[channels, T]`` and its sample rate (read with soundfile)."""
    from pathlib import Path

    import soundfile

    path = Path(str(path))
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise InvalidInputError(f"{path}: not an audio file (accepted: {', '.join(AUDIO_SUFFIXES)})")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise InvalidInputError(f"{path}: cannot read audio ({exc})") from None
    return torch.from_numpy(data.T.copy()), int(rate)


def write_audio(path: object, waveform: torch.Tensor, sample_rate: int) -> None:
    """Write a mono float waveform ``[T]`` in [-1, 1] as 16-bit PCM WAV or FLAC (format from the suffix)."""
    from pathlib import Path

    import soundfile

    path = Path(str(path))
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise InvalidInputError(f"{path}: audio is written as {' or '.join(AUDIO_SUFFIXES)}; choose one of those suffixes")
    data = waveform.detach().float().reshape(-1).clamp(-1, 1).cpu().numpy()
    soundfile.write(str(path), data, int(sample_rate), subtype="PCM_16")
