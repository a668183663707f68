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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, InvalidInputError
from ..graph import INPUT, OUTPUT, ConvGeometry, DependencyCache, Op, run_graph
from ..image import ImageModel, pixel_distribution
from ..layers import MaskedConv2d, RowMaskedConv2d, channel_groups, gated_activation, paired_groups
from ..registry import register_family
from ..validation import check_choice, check_labels, check_odd, check_positive

__all__ = ["GatedLayer", "GatedPixelCNN", "GatedPixelCNNConfig"]


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

    def __init__(self, in_channels: int, out_channels: int, kernel: int, first: bool, out_groups: torch.Tensor) -> None:
        super().__init__()
        self.k, self.first, self.out_groups = kernel, first, out_groups
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel // 2 + 1, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if self.first:  # one extra row of top padding and one row cut at the bottom: a down-shift
            return self.conv(F.pad(x, (k // 2, k // 2, k // 2 + 1, 0))[:, :, :-1])
        return self.conv(F.pad(x, (k // 2, k // 2, k // 2, 0)))

    def conv_geometry(self) -> ConvGeometry:
        k = self.k
        return ConvGeometry((k // 2 + 1, k), (k // 2, k // 2, k // 2 + int(self.first), 0),
                            weight=lambda: (self.conv.weight, self.conv.bias), out_groups=self.out_groups)


class Pointwise(nn.Conv2d):
    """A plain 1x1 convolution (the vertical-to-horizontal link), with the geometry the fast sampler reads.

    Unmasked: what it reads (the vertical stack) sees only earlier rows, so any channel may feed any;
    ``out_groups`` only says which gates of the horizontal stack each output channel is added to.
    """

    def __init__(self, channels: int, out_groups: torch.Tensor) -> None:
        super().__init__(channels, channels, 1)
        self.out_groups = out_groups

    def conv_geometry(self) -> ConvGeometry:
        return ConvGeometry((1, 1), weight=lambda: (self.weight, self.bias), out_groups=self.out_groups)


class GatedLayer(nn.Module):
    """One layer of both stacks (the paper's Figure 2), with skip output."""

    def __init__(self, in_channels: int, hidden: int, kernel: int, first: bool, groups: int) -> None:
        super().__init__()
        gate_groups = paired_groups(hidden, groups, 2)
        in_groups = channel_groups(in_channels, groups)
        self.first = first
        self.v_conv = VerticalConv(in_channels, 2 * hidden, kernel, first, gate_groups)
        self.v_to_h = Pointwise(2 * hidden, gate_groups)
        self.h_conv = RowMaskedConv2d(in_channels, 2 * hidden, kernel, "A" if first else "B", in_groups, gate_groups)
        self.h_out = MaskedConv2d(hidden, hidden, 1, "B", groups)
        self.skip = MaskedConv2d(hidden, hidden, 1, "B", groups)


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

    def graph(self, cond: torch.Tensor | None = None) -> list[Op]:
        """Both stacks as ops over named activations: the one definition ``forward`` and fast sampling both run."""
        ops: list[Op] = []

        def add(kind: str, module: Any, *inputs: str, pre: Any = None, consts: tuple[torch.Tensor, ...] = ()) -> str:
            ops.append(Op(kind, f"a{len(ops)}", inputs, module, pre, consts))
            return ops[-1].out

        v = h = INPUT
        skip = None
        for layer, cv in zip(self.layers, self._conditions(cond), strict=True):
            pre = add("conv", layer.v_conv, v)
            link = add("conv", layer.v_to_h, pre if cv is None else (pre := add("point", torch.add, pre, consts=(cv[0],))))
            if cv is not None:
                link = add("point", torch.add, link, consts=(cv[1],))
            v = add("point", gated_activation, pre)
            gated = add("point", lambda a, b: gated_activation(a + b), add("conv", layer.h_conv, h), link)
            out = add("conv", layer.h_out, gated)
            h = out if layer.first else add("point", torch.add, h, out)
            s = add("conv", layer.skip, gated)
            skip = s if skip is None else add("point", torch.add, skip, s)
        add("conv", self.output[1], skip, pre=F.relu)
        ops.append(Op("conv", OUTPUT, (ops[-1].out,), self.output[3], F.relu))
        return ops

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, C * K, H, W]`` (channel-major; K = 1 for binary) for inputs ``x`` in [-1, 1] and class ids ``cond``."""
        return run_graph(self.graph(cond), x)[OUTPUT]

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> DependencyCache:
        """Each activation computed once, colour group by colour group (R -> G -> B, the masks' order)."""
        return DependencyCache(self, levels, cond, self.graph(cond), lambda x: x, first_row)
