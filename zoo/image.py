"""Images: the data space (integer levels ``[N, C, H, W]``), the raster-order model base, PNG I/O."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from .contract import AutoregressiveModel, Cache, Condition, check_count, check_sampling
from .distributions import Bernoulli, Categorical, Distribution
from .errors import InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "FullForward", "ImageCache", "ImageModel", "ImageSpace", "RowCrop", "pixel_distribution", "read_images",
           "write_grid"]

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


def pixel_distribution(levels: int, channels: int) -> Distribution:
    """The per-channel output of the PixelCNN family of models: a Bernoulli logit for binary images, else a softmax."""
    return Bernoulli(channels) if levels == 2 else Categorical(levels, channels)


class ImageCache(Cache):
    """Generation state over an image's steps: pixel ``t // D`` in raster order, channel ``t % D`` inside it.

    ``D`` is the distribution's draws per pixel (the channels, or 1 for a joint draw). ``update``
    writes the drawn value into ``levels``; subclasses keep whatever activations they reuse.
    """

    def __init__(self, model: ImageModel, levels: torch.Tensor, cond: torch.Tensor | None) -> None:
        self.model, self.levels, self.cond = model, levels, cond
        self.draws = model.distribution.draws_per_position
        self.width = model.space.width

    def position(self, t: int) -> tuple[int, int, int]:
        """``(row, col, channel)`` of step ``t`` (channel 0 for a joint draw)."""
        pixel, channel = divmod(t, self.draws)
        return (*divmod(pixel, self.width), channel)

    def unit(self, levels: torch.Tensor) -> torch.Tensor:
        return self.model.space.to_unit(levels, self.model.dtype)

    def update(self, t: int, value: torch.Tensor) -> None:
        row, col, channel = self.position(t)
        if value.dim() == 2:
            self.levels[:, :, row, col] = value
        else:
            self.levels[:, channel, row, col] = value


class FullForward(ImageCache):
    """The naive path: the whole network on the whole image at every step (the reference for every cache)."""

    def params_at(self, t: int) -> torch.Tensor:
        row, col, channel = self.position(t)
        return self.model.distribution.channel_params(self.model(self.unit(self.levels), self.cond)[:, :, row, col], channel)


class RowCrop(ImageCache):
    """Exact for any raster-causal network: no output at row r depends on a row below r, so those rows are left out."""

    def params_at(self, t: int) -> torch.Tensor:
        row, col, channel = self.position(t)
        params = self.model(self.unit(self.levels[:, :, : row + 1]), self.cond)[:, :, row, col]
        return self.model.distribution.channel_params(params, channel)


class ImageModel(AutoregressiveModel):
    """Raster-order image models over integer levels ``[N, C, H, W]``.

    A family's config has ``height``, ``width``, ``channels``, ``levels`` (and ``labels`` when
    class-conditional); the family implements ``forward(x, cond) -> params [N, P, H, W]`` for ``x``
    in [-1, 1], where the parameters at a pixel see only earlier pixels (and, for channel c's
    block, the channels before c of the same pixel), and may override ``incremental_cache``.
    """

    modality: ClassVar[str] = "image"

    def __init__(self, config: Any, *, distribution: Distribution, labels: Sequence[str] | None = None) -> None:
        super().__init__(config, distribution=distribution, labels=labels)
        self.space = ImageSpace(config.channels, config.height, config.width, config.levels)

    @abstractmethod
    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Output parameters ``[N, P, H, W]`` for ``x`` in [-1, 1] and class ids ``cond`` (None: unconditional)."""

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> Cache:
        """The fast sampler's state after the known rows ``[0, first_row)``; the default crops rows below the current one."""
        return RowCrop(self, levels, cond)

    # ---- contract
    def per_dim_log_prob(self, levels: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """``log p(x_t | x_<t)`` for integer ``levels [N, C, H, W]``, in float32 nats, differentiable."""
        return self.distribution.log_prob(self(self.space.to_unit(levels, self.dtype), cond), levels)

    def dims(self, x: Any = None) -> int:
        return self.space.dims

    def example_batch(self, n: int) -> torch.Tensor:
        return torch.randint(0, self.space.levels, (n, *self.space.shape), dtype=torch.uint8)

    def training_loss(self, batch: Any) -> tuple[torch.Tensor, int]:
        x, cond = batch if isinstance(batch, (tuple, list)) else (batch, None)
        levels = x.to(self.device).long()
        cond = None if self.num_conditions == 0 or cond is None else cond.to(self.device).long()
        if self.num_conditions and cond is None:
            raise InvalidInputError(f"this model is conditional on {self.labels}; the batch carries no class ids")
        return -self.per_dim_log_prob(levels, cond).sum(), levels.numel()

    @torch.inference_mode()
    def log_prob(self, x: torch.Tensor, *, condition: Condition = None, per_dim: bool = False) -> torch.Tensor:
        levels = self.space.validate(x).to(self.device)
        cond = self.condition_ids(condition, levels.shape[0])
        lp = self.per_dim_log_prob(levels, cond)
        return lp if per_dim else lp.flatten(1).sum(1)

    @torch.inference_mode()
    def sample(self, n: int, *, condition: Condition = None, temperature: float = 1.0, generator: torch.Generator | None = None,
               progress: bool | None = None, naive: bool = False) -> torch.Tensor:
        """Draw ``n`` images as ``uint8 [n, C, H, W]`` (levels 0..levels-1)."""
        n = check_count(n, "n")
        self.check_generation_size(n, self.space.dims, 16 * self.distribution.uniforms)
        levels = torch.zeros((n, *self.space.shape), dtype=torch.long, device=self.device)
        return self._fill(levels, 0, condition, temperature, generator, progress, naive)

    @torch.inference_mode()
    def complete(self, x: torch.Tensor, *, rows: int, condition: Condition = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None, progress: bool | None = None, naive: bool = False) -> torch.Tensor:
        """Keep the first ``rows`` rows of ``x`` (full-size images) and sample the rest."""
        levels = self.space.validate(x).to(self.device).clone()
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= self.space.height:
            raise InvalidInputError(f"rows must be an int in 0..{self.space.height}, got {rows!r}")
        return self._fill(levels, rows, condition, temperature, generator, progress, naive)

    def _fill(self, levels: torch.Tensor, first_row: int, condition: Condition, temperature: float,
              generator: torch.Generator | None, progress: bool | None, naive: bool) -> torch.Tensor:
        temperature = check_sampling(temperature)
        cond = self.condition_ids(condition, levels.shape[0])
        cache = FullForward(self, levels, cond) if naive else self.incremental_cache(levels, cond, first_row)
        per_row = self.space.width * self.distribution.draws_per_position
        self.run_generation(cache, first_row * per_row, self.space.height * per_row, levels.shape[0], temperature, generator,
                            progress, "step")
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


def write_grid(images: torch.Tensor, model: Any, output: str, nrow: int | None = None, padding: int = 2) -> None:
    """Save images ``[N, C, H, W]`` (the model's levels) as one PNG grid, ``nrow`` per row, on a mid-grey background.

    The layout of torchvision's ``make_grid``/``save_image``, written with PIL: importing torchvision
    for it cost 2.2 s, most of the README's main job.
    """
    pixels = model.space.to_uint8(images).cpu()
    n, c, h, w = pixels.shape
    if n == 1:  # one image is saved as it is, without a border (as torchvision does)
        padding = 0
    per_row = nrow or max(1, math.isqrt(n - 1) + 1)
    rows = -(-n // per_row)
    grid = torch.full((c, rows * (h + padding) + padding, per_row * (w + padding) + padding), 128, dtype=torch.uint8)
    for i in range(n):
        top, left = padding + (i // per_row) * (h + padding), padding + (i % per_row) * (w + padding)
        grid[:, top : top + h, left : left + w] = pixels[i]
    array = grid.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if c == 1 else array).save(output)
