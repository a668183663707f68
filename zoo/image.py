"""Images: the data space (integer levels ``[N, C, H, W]``), the raster-order model base, PNG I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torchvision.utils import save_image

from .contract import AutoregressiveModel, Condition, check_sampling, progress_bar
from .errors import InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "ImageModel", "ImageSpace", "read_images", "write_grid"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


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


class ImageModel(AutoregressiveModel):
    """Raster-order image models. A family implements ``forward``, ``per_dim_log_prob`` and ``sample_pixel``."""

    modality: ClassVar[str] = "image"

    @property
    def space(self) -> ImageSpace:
        c = self.config
        return ImageSpace(c.channels, c.height, c.width, c.levels)

    # ---- hooks a family implements
    def per_dim_log_prob(self, levels: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(x_t | x_<t)`` for integer ``levels [N,C,H,W]``, in float32 nats, differentiable."""
        raise NotImplementedError

    def sample_pixel(
        self, levels: torch.Tensor, cond: torch.Tensor | None, row: int, col: int,
        temperature: float, generator: torch.Generator | None, state: Any,
    ) -> None:
        """Sample every channel of pixel ``(row, col)`` given the pixels before it, writing into ``levels``.

        ``state`` is what ``sampling_state`` returned (None on the naive path, which must run the
        network on the whole image: the reference that fast paths are tested against).
        """
        raise NotImplementedError

    def sampling_state(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> Any:
        """Caches a fast sampler carries from pixel to pixel (layer activations, recurrent state).

        Called once per ``sample``/``complete`` unless ``naive=True``; ``levels`` already holds the
        known rows ``[0, first_row)``. The default keeps nothing.
        """
        return None

    # ---- contract
    def dims(self, x: Any = None) -> int:
        return self.space.dims

    def example_batch(self, n: int) -> torch.Tensor:
        """``n`` random valid images: a cheap input for smoke tests and publish-time validation."""
        return torch.randint(0, self.space.levels, (n, *self.space.shape), dtype=torch.uint8)

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        x, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
        levels = x.to(self.device).long()
        cond = None if self.num_conditions == 0 or cond is None else cond.to(self.device).long()
        return -self.per_dim_log_prob(levels, cond).sum(), levels.numel()

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        levels = self.space.validate(x).to(self.device)
        cond = self.condition_ids(condition, levels.shape[0])
        lp = self.per_dim_log_prob(levels, cond)
        return lp if per_dim else lp.flatten(1).sum(1)

    @torch.inference_mode()
    def sample(
        self, n: int, *, condition: Condition = None, temperature: float = 1.0,
        generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images as ``uint8 [n, C, H, W]`` (levels 0..levels-1)."""
        if not isinstance(n, int) or n < 1:
            raise InvalidInputError(f"n must be a positive int, got {n!r}")
        levels = torch.zeros((n, *self.space.shape), dtype=torch.long, device=self.device)
        return self._fill(levels, 0, condition, temperature, generator, progress, naive)

    @torch.inference_mode()
    def complete(
        self, x: torch.Tensor, *, rows: int, condition: Condition = None, temperature: float = 1.0,
        generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False,
    ) -> torch.Tensor:
        """Keep the first ``rows`` rows of ``x`` (full-size images) and sample the rest."""
        levels = self.space.validate(x).to(self.device).clone()
        if not isinstance(rows, int) or not 0 <= rows <= self.space.height:
            raise InvalidInputError(f"rows must be an int in 0..{self.space.height}, got {rows!r}")
        return self._fill(levels, rows, condition, temperature, generator, progress, naive)

    def _fill(self, levels, first_row, condition, temperature, generator, progress, naive) -> torch.Tensor:
        check_sampling(temperature, None, None)
        cond = self.condition_ids(condition, levels.shape[0])
        h, w = self.space.height, self.space.width
        state = None if naive else self.sampling_state(levels, cond, first_row)
        with progress_bar((h - first_row) * w, progress, f"sampling {self.family}", unit="px") as bar:
            for row in range(first_row, h):
                for col in range(w):
                    self.sample_pixel(levels, cond, row, col, float(temperature), generator, state)
                    bar.update(1)
        return levels.to(torch.uint8)




def read_images(paths: list[str], model: Any, binarize: bool) -> torch.Tensor:
    space = model.space
    mode = {1: "L", 3: "RGB"}.get(space.channels)
    images = []
    for name in paths:
        path = Path(name)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise InvalidInputError(f"{path}: not an image file (accepted: {', '.join(IMAGE_SUFFIXES)})")
        try:
            with Image.open(path) as im:
                pixels = torch.from_numpy(np.array(im.convert(mode)))
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read image ({exc})") from None
        pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        if tuple(pixels.shape[1:]) != (space.height, space.width):
            raise InvalidInputError(f"{path} is {pixels.shape[2]}x{pixels.shape[1]}; this model takes {space.width}x{space.height} images")
        images.append(space.from_uint8(pixels, binarize=binarize))
    return torch.stack(images)


def write_grid(images: torch.Tensor, model: Any, output: str, nrow: int | None = None) -> None:
    pixels = model.space.to_uint8(images).float() / 255
    save_image(pixels, output, nrow=nrow or max(1, math.isqrt(images.shape[0] - 1) + 1), padding=2, pad_value=0.5)
