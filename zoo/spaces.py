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
