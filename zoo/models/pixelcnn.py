"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.4).

A 7x7 mask-A convolution, residual blocks (1x1 -> 3x3 mask-B -> 1x1, the paper's Figure 5), two
1x1 ReLU output layers and a per-channel output: one Bernoulli logit for binary images or a
256-way softmax for 8-bit images. Colour channels are generated R -> G -> B inside each pixel by
the channel-group masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..image import ImageModel
from ..layers import MaskedConv2d
from ..registry import register_family


@dataclass
class PixelCNNConfig:
    height: int = 28
    width: int = 28
    channels: int = 1
    levels: int = 2  # 2: Bernoulli output; 256: 256-way softmax
    hidden: int = 128  # "2h" in the paper: channels between residual blocks
    n_residual: int = 7
    input_kernel: int = 7
    residual_kernel: int = 3
    output_hidden: int = 256
    labels: list[str] | None = None  # unconditional; kept for the shared contract


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = MaskedConv2d(channels, half, 1, "B", groups)
        self.conv = MaskedConv2d(half, half, kernel_size, "B", groups)
        self.expand = MaskedConv2d(half, channels, 1, "B", groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(F.relu(x))
        h = self.conv(F.relu(h))
        return x + self.expand(F.relu(h))


@register_family(
    "pixelcnn",
    config=PixelCNNConfig,
    presets={
        "tiny": dict(height=4, width=4, hidden=12, n_residual=1, input_kernel=3, output_hidden=12),
        "binarized-mnist": dict(hidden=128, n_residual=7, output_hidden=256),
        # Paper's CIFAR-10 model: 15 residual blocks, h=128 (2h=256), 1024-wide output layers.
        "paper-cifar10": dict(height=32, width=32, channels=3, levels=256, hidden=256, n_residual=15, output_hidden=1024),
    },
)
class PixelCNN(ImageModel):
    family = "pixelcnn"

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        c, g = config, config.channels
        if c.levels not in (2, 256):
            raise ConfigError(f"levels must be 2 (binary) or 256 (8-bit), got {c.levels}")
        for name in ("hidden", "output_hidden"):
            if getattr(c, name) < 2 * g:
                raise ConfigError(f"{name}={getattr(c, name)} must be at least 2 x channels ({2 * g})")
        self.out_per_channel = 1 if c.levels == 2 else c.levels
        self.input = MaskedConv2d(g, c.hidden, c.input_kernel, "A", g)
        self.blocks = nn.ModuleList(ResidualBlock(c.hidden, c.residual_kernel, g) for _ in range(c.n_residual))
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(c.hidden, c.output_hidden, 1, "B", g),
            nn.ReLU(),
            MaskedConv2d(c.output_hidden, g * self.out_per_channel, 1, "B", g),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C, K, H, W]`` (K = 1 for binary) for inputs ``x`` scaled to [-1, 1]."""
        h = self.input(x)
        for block in self.blocks:
            h = block(h)
        out = self.output(h)
        n, _, height, width = out.shape
        return out.view(n, self.config.channels, self.out_per_channel, height, width)

    def per_dim_log_prob(self, levels: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        logits = self(self.space.to_unit(levels, self.dtype)).float()
        if self.config.levels == 2:
            return -F.binary_cross_entropy_with_logits(logits[:, :, 0], levels.float(), reduction="none")
        return logits.log_softmax(2).gather(2, levels.unsqueeze(2)).squeeze(2)

    def sampling_state(self, levels, cond, first_row) -> bool:
        """Nothing is cached; a state that is not None only tells ``sample_pixel`` to crop rows."""
        return True

    def sample_pixel(self, levels, cond, row, col, temperature, generator, state) -> None:
        # Row cropping is exact: no output at row r depends on an input below r, so rows after
        # `row` can be left out of the forward (the naive path, state None, keeps the full image).
        crop_rows = state is not None
        view = levels[:, :, : row + 1] if crop_rows else levels
        for channel in range(self.config.channels):
            logits = self(self.space.to_unit(view, self.dtype))[:, channel, :, row, col].float() / temperature
            if self.config.levels == 2:
                value = torch.bernoulli(torch.sigmoid(logits[:, 0]), generator=generator)
            else:
                value = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            levels[:, channel, row, col] = value.long()
