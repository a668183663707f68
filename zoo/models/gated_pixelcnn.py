"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

Two stacks remove PixelCNN's blind spot: a vertical stack whose output at row ``i`` sees every
pixel of the rows above within its (growing) window, and a horizontal stack that sees the pixels
to the left on the current row plus the vertical stack through a 1x1 link. Every layer is a gated
unit ``tanh(a) * sigmoid(b)``; the horizontal stack is residual and feeds skip connections to
the output. A class label enters every gate as a learned embedding. Colour channels are generated
R -> G -> B inside a pixel by channel-group masks on the horizontal stack's current-pixel tap; the
vertical stack sees only earlier rows, so it needs no channel masks at all.

Here the vertical stack is "strictly above" from its first layer (its first convolution reads
rows ``i-k//2-1 .. i-1``; later ones rows ``i-k//2 .. i`` of a map that already sees only earlier
rows), so the vertical-to-horizontal link needs no extra down-shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InvalidInputError
from ..image import ImageCache, ImageModel, pixel_distribution
from ..layers import MaskedConv2d, RowMaskedConv2d, channel_groups, gated_activation, paired_groups
from ..registry import register_family
from ..validation import check_choice, check_labels, check_odd, check_positive


@dataclass
class GatedPixelCNNConfig:
    height: int = 28
    width: int = 28
    channels: int = 1
    levels: int = 256  # 2: Bernoulli output; 256: 256-way softmax
    hidden: int = 64  # feature maps per stack ("p" in the paper); gates use 2 x hidden
    n_layers: int = 10
    kernel: int = 5  # odd; vertical kernels are (kernel//2 + 1) x kernel, horizontal 1 x (kernel//2 + 1)
    input_kernel: int = 7  # first layer's kernel: a wider field from the raw image
    output_hidden: int = 256
    labels: list[str] | None = None  # class names: conditional when given

    def __post_init__(self) -> None:
        check_positive(self, "height", "width", "channels", "hidden", "n_layers", "output_hidden")
        check_odd(self, "kernel", "input_kernel")
        check_choice(self, "levels", (2, 256))
        check_labels(self)
        for name in ("hidden", "output_hidden"):
            if getattr(self, name) < self.channels:
                raise ConfigError(f"GatedPixelCNNConfig.{name}={getattr(self, name)} must be at least channels ({self.channels})")


class VerticalConv(nn.Module):
    """Sees rows strictly above (``first``) or at/above the current row of a map that itself sees only earlier rows."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        self.k, self.first = kernel, first
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel // 2 + 1, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if self.first:  # one extra row of top padding and one row cut at the bottom: a down-shift
            return self.conv(F.pad(x, (k // 2, k // 2, k // 2 + 1, 0))[:, :, :-1])
        return self.conv(F.pad(x, (k // 2, k // 2, k // 2, 0)))


class GatedLayer(nn.Module):
    """One layer of both stacks (the paper's Figure 2), with skip output."""

    def __init__(self, in_channels: int, hidden: int, kernel: int, first: bool, groups: int) -> None:
        super().__init__()
        gate_groups = paired_groups(hidden, groups, 2)
        in_groups = channel_groups(in_channels, groups)
        self.first = first
        self.v_conv = VerticalConv(in_channels, 2 * hidden, kernel, first)
        self.v_to_h = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        self.h_conv = RowMaskedConv2d(in_channels, 2 * hidden, kernel, "A" if first else "B", in_groups, gate_groups)
        self.h_out = MaskedConv2d(hidden, hidden, 1, "B", groups)
        self.skip = MaskedConv2d(hidden, hidden, 1, "B", groups)

    def vertical(self, v: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Next vertical map and this layer's link into the horizontal stack (condition included)."""
        pre = self.v_conv(v)
        if cond is not None:
            pre = pre + cond[0]
        link = self.v_to_h(pre)
        if cond is not None:
            link = link + cond[1]
        return gated_activation(pre), link

    def horizontal(self, h: torch.Tensor, link: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next horizontal map and this layer's skip contribution."""
        gated = gated_activation(self.h_conv(h) + link)
        out = self.h_out(gated)
        return (out if self.first else h + out), self.skip(gated)


@register_family(
    "gated-pixelcnn",
    config=GatedPixelCNNConfig,
    presets={
        "tiny": dict(height=4, width=4, levels=2, hidden=8, n_layers=3, kernel=3, input_kernel=3, output_hidden=12),
        "mnist": dict(hidden=32, n_layers=8, kernel=5, output_hidden=128, labels=[str(i) for i in range(10)]),
        "binarized-mnist": dict(levels=2, hidden=64, n_layers=10, kernel=5, output_hidden=256),
        # The paper's large model (section 3): 20 layers, 384 feature maps, 5x5 filters.
        "paper-cifar10": dict(height=32, width=32, channels=3, levels=256, hidden=384, n_layers=20, kernel=5,
                              input_kernel=7, output_hidden=1024),
    },
)
class GatedPixelCNN(ImageModel):
    def __init__(self, config: GatedPixelCNNConfig) -> None:
        super().__init__(config, distribution=pixel_distribution(config.levels, config.channels), labels=config.labels)
        c, g = config, config.channels
        self.layers = nn.ModuleList(
            GatedLayer(g if i == 0 else c.hidden, c.hidden, c.input_kernel if i == 0 else c.kernel, i == 0, g)
            for i in range(c.n_layers)
        )
        # One learned vector per class and layer, added inside the vertical and the horizontal gates.
        self.embed = nn.Embedding(self.num_conditions, c.n_layers * 4 * c.hidden) if self.num_conditions else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(c.hidden, c.output_hidden, 1, "B", g),
            nn.ReLU(),
            MaskedConv2d(c.output_hidden, self.distribution.num_params, 1, "B", g),
        )

    # ---- network
    def _conditions(self, cond: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        n = self.config.n_layers
        if self.embed is None or cond is None:
            if self.embed is not None:
                raise InvalidInputError(f"this model is conditional on {self.labels}; the batch carries no class ids")
            return [None] * n
        e = self.embed(cond).view(-1, n, 2, 2 * self.config.hidden, 1, 1)
        return [(e[:, i, 0], e[:, i, 1]) for i in range(n)]

    def vertical_links(self, x: torch.Tensor, cond: torch.Tensor | None) -> list[torch.Tensor]:
        """Each layer's vertical-to-horizontal input ``[N, 2h, H, W]``: a function of the rows above only."""
        links, v = [], x
        for layer, cv in zip(self.layers, self._conditions(cond), strict=True):
            v, link = layer.vertical(v, cv)
            links.append(link)
        return links

    def horizontal_logits(self, x: torch.Tensor, links: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``[N, C * K, H, W]`` from the image and the vertical links (only left-looking from here on)."""
        h, skip = x, None
        for layer, link in zip(self.layers, links, strict=True):
            h, s = layer.horizontal(h, link)
            skip = s if skip is None else skip + s
        return self.output(skip)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, C * K, H, W]`` (channel-major; K = 1 for binary) for inputs ``x`` in [-1, 1] and class ids ``cond``."""
        return self.horizontal_logits(x, self.vertical_links(x, cond))

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> RowLinks:
        return RowLinks(self, levels, cond)


class RowLinks(ImageCache):
    """Gated PixelCNN's fast path: the vertical links of a row depend on the rows above only, so they are computed once
    per row; each step then runs just the horizontal stack on the current row, cropped at the current column."""

    def __init__(self, model: GatedPixelCNN, levels: torch.Tensor, cond: torch.Tensor | None) -> None:
        super().__init__(model, levels, cond)
        self.row, self.links = -1, []

    def params_at(self, t: int) -> torch.Tensor:
        row, col, channel = self.position(t)
        model = self.model
        if row != self.row:
            links = model.vertical_links(self.unit(self.levels[:, :, : row + 1]), self.cond)
            self.row, self.links = row, [link[:, :, row : row + 1] for link in links]
        x = self.unit(self.levels[:, :, row : row + 1, : col + 1])
        params = model.horizontal_logits(x, [link[..., : col + 1] for link in self.links])[:, :, 0, col]
        return model.distribution.channel_params(params, channel)
