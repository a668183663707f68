"""Training and evaluation batches cut from datasets: text windows and chunks, audio windows and whole clips.

Each dataset here has ``batch(idx)`` returning the tensors of examples ``idx``; a model's
``prepare_dataset`` builds them from a dataset adapter's natural data (``zoo.datasets``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile
import torch
from torch.utils.data import Dataset

from .errors import DatasetError

__all__ = ["AudioClip", "AudioClipSet", "AudioCodes", "AudioFile", "AudioWindows", "TextChunks", "TextWindows", "pack_windows"]


class TextWindows(Dataset):
    """Every window of ``length + 1`` tokens of a token stream (training examples, nanoGPT style).

    Example ``i`` starts at token ``i``; one in ten starts with the begin-of-text token instead of
    its first character, so the model also learns to start a text, as scoring and sampling do.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int | None) -> None:
        if len(ids) <= length + 1:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one training window of {length + 1}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) - self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] + torch.arange(self.length + 1)]
        if self.bos is not None:
            rows[idx % 10 == 0, 0] = self.bos
        return (rows,)


class TextChunks(Dataset):
    """Consecutive non-overlapping chunks of ``length`` tokens, each preceded by begin-of-text where there is one (evaluation).

    A last partial chunk (fewer than ``length`` tokens) is left out so every batch is rectangular.
    """

    def __init__(self, ids: torch.Tensor, length: int, *, bos: int | None) -> None:
        if len(ids) < length:
            raise DatasetError(f"the text has {len(ids)} characters, fewer than one evaluation chunk of {length}")
        self.ids, self.length, self.bos = ids, length, bos

    def __len__(self) -> int:
        return len(self.ids) // self.length

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor]:
        rows = self.ids[idx[:, None] * self.length + torch.arange(self.length)]
        if self.bos is None:
            return (rows,)
        return (torch.cat([torch.full((len(idx), 1), self.bos), rows], dim=1),)


@dataclass(frozen=True)
class AudioClip:
    waveform: torch.Tensor  # float32 [T] in [-1, 1]
    sample_rate: int
    speaker: str
    path: Path


@dataclass(frozen=True)
class AudioFile:
    """A clip left on disk and read on demand: corpora such as VCTK (44 hours at 48 kHz) do not fit in memory."""

    path: Path
    sample_rate: int
    frames: int
    speaker: str

    def read(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Frames ``[start, stop)`` as a float32 mono waveform (channels averaged)."""

        try:
            data, _ = soundfile.read(self.path, start=start, stop=stop, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise DatasetError(f"{self.path} is not a readable audio file: {exc}") from None
        return torch.from_numpy(data.mean(axis=1))


class AudioCodes:
    """Clips as integer code sequences at a model's rate: clips in memory are encoded once, files read on demand."""

    def __init__(self, clips: list[Any], space: Any) -> None:

        self.space, self.clips, self.codes, self.lengths = space, clips, [], []
        dtype = torch.uint8 if space.levels <= 256 else torch.int32
        for clip in clips:
            if isinstance(clip, AudioFile):
                self.codes.append(None)
                self.lengths.append(math.ceil(clip.frames * space.sample_rate / clip.sample_rate))
            else:
                codes = space.encode(space.resample(clip.waveform.float().clamp(-1, 1), clip.sample_rate)).to(dtype)
                self.codes.append(codes)
                self.lengths.append(len(codes))

    def __len__(self) -> int:
        return len(self.clips)

    def segment(self, i: int, lo: int, hi: int) -> torch.Tensor:
        """Codes ``[lo, hi)`` of clip ``i`` (long)."""
        if self.codes[i] is not None:
            return self.codes[i][lo:hi].long()

        clip, rate = self.clips[i], self.space.sample_rate
        # Read whole resampling blocks (rate ratio in lowest terms) plus a margin, so the samples
        # kept are what resampling the whole file gives, up to the filter's reach past the margin.
        g = math.gcd(clip.sample_rate, rate)
        step_in, step_out, margin = clip.sample_rate // g, rate // g, max(1, 256 // (clip.sample_rate // g))
        first = max(0, lo // step_out - margin)
        last = min(clip.frames, (-(-hi // step_out) + margin) * step_in)
        wave = self.space.resample(clip.read(first * step_in, last), clip.sample_rate)
        return self.space.encode(wave)[lo - first * step_out : hi - first * step_out]


def pack_windows(segment: Callable[[int, int, int], torch.Tensor], spans: list[tuple[int, int, int]], context: int, bos: int,
                 width: int | None = None) -> torch.Tensor:
    """Training/evaluation rows ``[N, 2, W]``: row 0 the network's inputs, row 1 the scored targets (-1: not scored).

    ``segment(i, lo, hi)`` gives codes ``[lo, hi)`` of clip ``i``; ``spans`` holds ``(clip, a, b)``:
    targets ``[a, b)`` are scored, with up to ``context`` earlier
    samples as left context. The input at clip position t is code t-1 (``bos`` at t = 0); a window
    that reaches the clip start begins with ``bos`` and is exact for every target in it.
    """
    starts = [max(0, a - context) for _, a, _ in spans]
    width = width or max(b - s for (_, _, b), s in zip(spans, starts, strict=True))
    out = torch.full((len(spans), 2, width), -1, dtype=torch.long)
    out[:, 0] = 0
    for row, ((i, a, b), s) in enumerate(zip(spans, starts, strict=True)):
        c = segment(i, max(0, s - 1), b)
        inputs = torch.cat([torch.tensor([bos]), c[: b - 1]]) if s == 0 else c[: b - s]
        out[row, 0, : b - s] = inputs
        out[row, 1, a - s : b - s] = c[-(b - a) :] if b > a else c[:0]
    return out


class AudioWindows(Dataset):
    """Random training windows: ``length`` scored samples with up to ``context`` samples of left context.

    There is one example per ``length`` samples of audio, so long clips are drawn proportionally
    more often; the window's offset inside its clip is drawn from torch's global generator (which
    the training loop seeds and saves, so resumed runs see the same windows).
    """

    def __init__(self, codes: AudioCodes, speakers: torch.Tensor | None, length: int, context: int, bos: int) -> None:
        self.codes, self.speakers, self.length, self.context, self.bos = codes, speakers, length, context, bos
        counts = torch.tensor([max(1, -(-n // length)) for n in codes.lengths])
        self.clip_of = torch.repeat_interleave(torch.arange(len(codes)), counts)

    def __len__(self) -> int:
        return len(self.clip_of)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        clips = self.clip_of[idx]
        spans = []
        for i in clips.tolist():
            n = self.codes.lengths[i]
            a = int(torch.randint(0, max(1, n - self.length + 1), ()))
            spans.append((i, a, min(n, a + self.length)))
        rows = pack_windows(self.codes.segment, spans, self.context, self.bos, width=self.context + self.length)
        return (rows,) if self.speakers is None else (rows, self.speakers[clips])


class AudioClipSet(Dataset):
    """Whole clips for evaluation: every sample of every clip is scored exactly once, from the clip start."""

    def __init__(self, codes: AudioCodes, speakers: torch.Tensor | None, bos: int) -> None:
        self.codes, self.speakers, self.bos = codes, speakers, bos

    def __len__(self) -> int:
        return len(self.codes)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spans = [(i, 0, self.codes.lengths[i]) for i in idx.tolist()]
        rows = pack_windows(self.codes.segment, spans, 0, self.bos)
        return (rows,) if self.speakers is None else (rows, self.speakers[idx])
