"""Audio: the waveform space (mu-law or linear codes), the sample-by-sample model base, training windows, WAV I/O."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile
import torch
import torchaudio
import torchaudio.functional as AF
from PIL import Image

from .contract import AutoregressiveModel, Cache, Condition, check_count, check_sampling
from .distributions import Distribution
from .errors import DatasetError, InvalidInputError
from .windows import AudioClipSet, AudioCodes, AudioWindows, pack_windows

__all__ = ["AUDIO_SUFFIXES", "AudioCache", "AudioModel", "AudioSpace", "read_audio", "write_audio", "write_spectrogram"]

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
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
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

        return AF.resample(x.float(), rate, self.sample_rate).clamp(-1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes ``0 .. levels-1`` (long) of a float waveform in [-1, 1]."""
        if self.encoding == "mu-law":

            return AF.mu_law_encoding(x.float(), self.levels).clamp(0, self.levels - 1)
        return ((x.float() + 1) * ((self.levels - 1) / 2)).round().long().clamp(0, self.levels - 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """The float waveform (float32, in [-1, 1]) of integer codes."""
        if self.encoding == "mu-law":

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


    path = Path(str(path))
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise InvalidInputError(f"{path}: audio is written as {' or '.join(AUDIO_SUFFIXES)}; choose one of those suffixes")
    data = waveform.detach().float().reshape(-1).clamp(-1, 1).cpu().numpy()
    soundfile.write(str(path), data, int(sample_rate), subtype="PCM_16")


class AudioCache(Cache):
    """Generation over a code buffer ``[N, T]``: step ``t`` draws sample ``t``. This base is the naive path."""

    def __init__(self, model: AudioModel, codes: torch.Tensor, cond: torch.Tensor | None) -> None:
        self.model, self.codes, self.cond = model, codes, cond

    def params_at(self, t: int) -> torch.Tensor:
        """One forward over the receptive field before ``t`` (exact: nothing older reaches position t)."""
        start = max(0, t - self.model.receptive_field + 1)
        inputs = self.codes[:, max(0, start - 1) : t]
        if start == 0:
            inputs = torch.cat([torch.full_like(self.codes[:, :1], self.model.bos), inputs], dim=1)
        return self.model(inputs, self.cond)[:, :, -1]

    def update(self, t: int, value: torch.Tensor) -> None:
        self.codes[:, t] = value.reshape(-1)


class AudioModel(AutoregressiveModel):
    """Waveform models over integer sample codes. A family implements ``forward`` and may override ``incremental_cache``.

    A clip of T samples is scored from a begin-of-clip input (code ``levels``): the input at
    position t is sample t-1, so ``log p(x_t | x_<t)`` for every t, the first included. Batches for
    training and evaluation are ``[N, 2, W]`` code rows (inputs; targets with -1 where not scored),
    so cropped training windows and whole test clips share one loss.
    """

    modality: ClassVar[str] = "audio"
    eval_chunk: ClassVar[int] = 1 << 17  # samples per forward when scoring without gradients (bounds memory)

    def __init__(self, config: Any, *, space: AudioSpace, distribution: Distribution, labels: Sequence[str] | None,
                 receptive_field: int, train_samples: int) -> None:
        super().__init__(config, distribution=distribution, labels=labels)
        self.space = space
        self.receptive_field = receptive_field
        self.train_samples = train_samples

    @property
    def sample_rate(self) -> int:
        return self.space.sample_rate

    @property
    def bos(self) -> int:
        return self.space.levels

    # ---- hooks a family implements
    @abstractmethod
    def forward(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Output parameters ``[N, P, W]`` for input codes ``[N, W]`` (values 0..levels, ``levels`` = begin of clip)."""

    def incremental_cache(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None) -> Cache:
        """The fast sampler's state after the known ``codes[:, :first]``; the default is the naive path."""
        return AudioCache(self, codes, cond)

    # ---- helpers
    def per_step_log_prob(self, inputs: torch.Tensor, targets: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(target_t | inputs_<=t)`` in float32 nats ``[N, W]``, differentiable; targets < 0 give 0."""
        lp = self.distribution.log_prob(self(inputs, cond), targets.clamp(min=0)[:, None])[:, 0]
        return lp.masked_fill(targets < 0, 0.0)

    def _waveforms(self, x: Any, name: str, sample_rate: int | None, resample: bool) -> list[torch.Tensor]:
        """Validated clips (a list of ``[T]`` tensors) from a waveform ``[N, T]``/``[T]`` or a list of ``[T]`` waveforms."""
        if isinstance(x, (list, tuple)):
            if not x:
                raise InvalidInputError(f"{name} is an empty list; give a waveform [N, T] or a list of [T] waveforms")
            return [self._single(w, f"{name}[{i}]", sample_rate, resample) for i, w in enumerate(x)]
        return list(self.space.validate(x, name=name, sample_rate=sample_rate, resample=resample))

    def _single(self, w: Any, name: str, sample_rate: int | None, resample: bool) -> torch.Tensor:
        wave = self.space.validate(w, name=name, sample_rate=sample_rate, resample=resample)
        if wave.shape[0] != 1:
            raise InvalidInputError(f"{name} holds {wave.shape[0]} clips; a list entry must be one mono waveform [T]")
        return wave[0]

    def _scores(self, rows: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Per-sample log-probabilities ``[N, W]`` of packed rows, in chunks of at most ``eval_chunk`` samples when not training."""
        rows = rows.to(self.device)
        if torch.is_grad_enabled():
            return self.per_step_log_prob(rows[:, 0], rows[:, 1], cond)
        out = torch.zeros(rows.shape[0], rows.shape[2], device=self.device)
        per = max(1, self.eval_chunk // max(1, rows.shape[2]))
        for lo in range(0, rows.shape[0], per):
            part = rows[lo : lo + per]
            width = int((part[:, 1] >= 0).nonzero()[:, 1].max()) + 1 if bool((part[:, 1] >= 0).any()) else 1
            c = None if cond is None else cond[lo : lo + per]
            out[lo : lo + per, :width] = self.per_step_log_prob(part[:, 0, :width], part[:, 1, :width], c).float()
        return out

    # ---- contract
    def dims(self, x: Any) -> int | torch.Tensor:
        """Samples per clip: an int for a tensor batch, a float tensor for a list of clips."""
        if isinstance(x, (list, tuple)):
            return torch.tensor([float(torch.as_tensor(w).shape[-1]) for w in x])
        return int(torch.as_tensor(x).shape[-1])

    def bits_per_sample(self, x: Any, *, condition: Condition = None, sample_rate: int | None = None, resample: bool = False) -> torch.Tensor:
        """Negative log-likelihood in bits per sample, ``[N]``."""
        return -self.log_prob(x, condition=condition, sample_rate=sample_rate, resample=resample) / (self.dims(x) * math.log(2))

    def example_batch(self, n: int) -> torch.Tensor:
        """``n`` random valid waveforms of 50 ms."""
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, max(2, self.sample_rate // 20), generator=g) * 1.8 - 0.9

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        rows, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
        cond = None if self.num_conditions == 0 or cond is None else cond.to(self.device).long()
        lp = self._scores(rows, cond)
        return -lp.sum(), int((rows[:, 1] >= 0).sum())

    def prepare_dataset(self, raw: Any, *, train: bool) -> Any:
        """Clips (``AudioClip``s in memory or ``AudioFile``s on disk) as random training windows or whole test clips."""
        speakers = None
        if self.num_conditions:
            unknown = sorted({c.speaker for c in raw} - set(self.labels))
            if unknown:
                raise DatasetError(f"the dataset has speaker(s) {unknown} that this model does not know; its labels are {self.labels}")
            speakers = torch.tensor([self.labels.index(c.speaker) for c in raw])
        codes = AudioCodes(list(raw), self.space)
        if not train:
            return AudioClipSet(codes, speakers, self.bos)
        return AudioWindows(codes, speakers, self.train_samples, self.receptive_field - 1, self.bos)

    @torch.inference_mode()
    def log_prob(self, x: Any, *, condition: Condition = None, per_dim: bool = False, sample_rate: int | None = None,
                 resample: bool = False) -> torch.Tensor:
        """Nats per clip ``[N]`` (``per_dim``: each sample's ``[N, T]``, NaN-padded for a list of clips of different lengths).

        ``x`` is a waveform ``[N, T]``/``[T]`` or a list of ``[T]`` waveforms; ``sample_rate`` says its rate
        (default: the model's); a different rate needs ``resample=True``.
        """
        clips = self._waveforms(x, "waveform", sample_rate, resample)
        cond = self.condition_ids(condition, len(clips))
        codes = [self.space.encode(c) for c in clips]
        rows = pack_windows(lambda i, lo, hi: codes[i][lo:hi], [(i, 0, len(c)) for i, c in enumerate(codes)], 0, self.bos)
        lp = self._scores(rows, cond).cpu()
        if per_dim:
            return lp.masked_fill(rows[:, 1] < 0, float("nan"))
        return lp.sum(1)

    @torch.inference_mode()
    def sample(self, n: int, *, seconds: float = 1.0, samples: int | None = None, condition: Condition = None,
               temperature: float = 1.0, generator: torch.Generator | None = None, progress: bool | None = None,
               naive: bool = False) -> torch.Tensor:
        """Draw ``n`` clips of ``seconds`` (or exactly ``samples``) as float32 ``[n, T]`` in [-1, 1]."""
        n = check_count(n, "n")
        length = self._length(seconds, samples)
        self.check_generation_size(n, length, 8 + 4 * self.distribution.uniforms)
        codes = torch.zeros(n, length, dtype=torch.long, device=self.device)
        self._fill(codes, 0, condition, temperature, generator, progress, naive)
        return self.space.decode(codes).cpu()

    @torch.inference_mode()
    def complete(self, prefix: Any, *, seconds: float = 1.0, samples: int | None = None, condition: Condition = None,
                 temperature: float = 1.0, generator: torch.Generator | None = None, progress: bool | None = None,
                 naive: bool = False, sample_rate: int | None = None, resample: bool = False) -> torch.Tensor:
        """Each prefix ``[N, T]`` followed by ``seconds`` more: ``[N, T + new]``, the prefix returned unchanged."""
        wave = self.space.validate(prefix, name="prefix", sample_rate=sample_rate, resample=resample)
        new = self._length(seconds, samples, allow_zero=True)
        self.check_generation_size(wave.shape[0], wave.shape[1] + new, 8 + 4 * self.distribution.uniforms)
        codes = torch.zeros(wave.shape[0], wave.shape[1] + new, dtype=torch.long, device=self.device)
        codes[:, : wave.shape[1]] = self.space.encode(wave).to(self.device)
        self._fill(codes, wave.shape[1], condition, temperature, generator, progress, naive)
        return torch.cat([wave, self.space.decode(codes[:, wave.shape[1] :]).cpu()], dim=1)

    def _length(self, seconds: Any, samples: Any, allow_zero: bool = False) -> int:
        least = 0 if allow_zero else 1
        if samples is not None:
            return check_count(samples, "samples", minimum=least)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
            raise InvalidInputError(f"seconds must be a finite number >= 0, got {seconds!r}")
        length = round(seconds * self.sample_rate)
        if length < least:
            raise InvalidInputError(f"seconds={seconds!r} is less than one sample at {self.sample_rate} Hz; ask for at least "
                                    f"{1 / self.sample_rate:.3g} s")
        return length

    def _fill(self, codes: torch.Tensor, first: int, condition: Condition, temperature: float,
              generator: torch.Generator | None, progress: bool | None, naive: bool) -> None:
        temperature = check_sampling(temperature)
        cond = self.condition_ids(condition, codes.shape[0])
        cache = AudioCache(self, codes, cond) if naive else self.incremental_cache(codes, first, cond)
        self.run_generation(cache, first, codes.shape[1], codes.shape[0], temperature, generator, progress, "sample")


def write_spectrogram(clip: torch.Tensor, sample_rate: int, path: str) -> None:
    """A log-magnitude spectrogram PNG (low frequencies at the bottom), grey levels over an 80 dB range."""
    n_fft = max(64, 2 ** round(math.log2(sample_rate * 0.032)))  # ~32 ms windows
    power = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=n_fft // 4)(clip.float())
    db = 10 * torch.log10(power.clamp(min=1e-10))
    db = (db - db.max() + 80).clamp(min=0) / 80
    pixels = (255 * db.flip(0)).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    image.resize((max(image.width, 256), max(image.height, 128) * 2), Image.Resampling.NEAREST).save(path)
