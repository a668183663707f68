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
from ..graph import INPUT, OUTPUT, DependencyCache, Op, run_graph
from ..image import ImageModel, pixel_distribution
from ..layers import MaskedConv2d
from ..registry import register_family
from ..validation import check_choice, check_labels, check_odd, check_positive

__all__ = ["PixelCNN", "PixelCNNConfig", "ResidualBlock"]


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
    labels: list[str] | None = None  # unconditional: must stay empty (the field keeps every image config alike)

    def __post_init__(self) -> None:
        check_positive(self, "height", "width", "channels", "hidden", "n_residual", "output_hidden")
        check_odd(self, "input_kernel", "residual_kernel")
        check_choice(self, "levels", (2, 256))
        check_labels(self, allowed=False)
        for name in ("hidden", "output_hidden"):
            if getattr(self, name) < 2 * self.channels:
                raise ConfigError(f"PixelCNNConfig.{name}={getattr(self, name)} must be at least 2 x channels ({2 * self.channels})")


class ResidualBlock(nn.Module):
    """The paper's Figure 5 block: ReLU, 1x1 down to h, ReLU, k x k mask B, ReLU, 1x1 back to 2h, plus the input."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = MaskedConv2d(channels, half, 1, "B", groups)
        self.conv = MaskedConv2d(half, half, kernel_size, "B", groups)
        self.expand = MaskedConv2d(half, channels, 1, "B", groups)


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
    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config, distribution=pixel_distribution(config.levels, config.channels))
        c, g = config, config.channels
        self.input = MaskedConv2d(g, c.hidden, c.input_kernel, "A", g)
        self.blocks = nn.ModuleList(ResidualBlock(c.hidden, c.residual_kernel, g) for _ in range(c.n_residual))
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(c.hidden, c.output_hidden, 1, "B", g),
            nn.ReLU(),
            MaskedConv2d(c.output_hidden, self.distribution.num_params, 1, "B", g),
        )

    def graph(self) -> list[Op]:
        """The network as ops over named activations: the one definition ``forward`` and fast sampling both run."""
        ops = [Op("conv", "h0", (INPUT,), self.input)]
        h = "h0"
        for i, block in enumerate(self.blocks):
            ops += [Op("conv", f"b{i}a", (h,), block.reduce, F.relu), Op("conv", f"b{i}b", (f"b{i}a",), block.conv, F.relu),
                    Op("conv", f"b{i}c", (f"b{i}b",), block.expand, F.relu), Op("point", f"h{i + 1}", (h, f"b{i}c"), torch.add)]
            h = f"h{i + 1}"
        return ops + [Op("conv", "o1", (h,), self.output[1], F.relu), Op("conv", OUTPUT, ("o1",), self.output[3], F.relu)]

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, C * K, H, W]`` (channel-major; K = 1 for binary) for inputs ``x`` scaled to [-1, 1]."""
        return run_graph(self.graph(), x)[OUTPUT]

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> DependencyCache:
        """Each activation computed once, colour group by colour group (the masks' R -> G -> B order)."""
        return DependencyCache(self, levels, cond, self.graph(), lambda x: x, first_row)
