"""PixelCNN++ (Salimans et al. 2017; reference openai/pixel-cnn, PyTorch port pclucas14/pixel-cnn-pp).

Two streams replace masked convolutions: ``u`` sees the rows above (down-shifted convolutions),
``ul`` sees the rows above and the pixels to the left (down-right-shifted convolutions). Gated
ResNet blocks with concat_elu, three resolutions joined U-net style, weight normalisation, and a
discretized logistic mixture whose colour channels are linearly coupled R -> G -> B.

Module names follow pclucas14/pixel-cnn-pp, so a state dict of theirs maps onto ours by renaming
the weight-norm parameters (``tools/convert_pixelcnn_pp.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..distributions import DiscretizedLogisticMixture
from ..errors import ConfigError
from ..graph import INPUT, OUTPUT, ConvGeometry, DependencyCache, Op, run_graph
from ..image import ImageModel
from ..registry import register_family
from ..validation import check_choice, check_labels, check_positive, check_range

__all__ = ["PixelCNNPP", "PixelCNNPPConfig", "with_border"]


@dataclass
class PixelCNNPPConfig:
    height: int = 32
    width: int = 32
    channels: int = 3  # 3 (RGB, coupled mixture) or 1 (grey)
    levels: int = 256
    nr_resnet: int = 5  # gated ResNet blocks per stage on the way up (nr_resnet + 1 on the way down)
    nr_filters: int = 160
    nr_logistic_mix: int = 10
    dropout: float = 0.5
    labels: list[str] | None = None  # class names: class-conditional when set

    def __post_init__(self) -> None:
        check_positive(self, "height", "width", "nr_resnet", "nr_filters", "nr_logistic_mix")
        check_choice(self, "channels", (1, 3))
        check_choice(self, "levels", (256,))
        check_range(self, "dropout", 0.0, 1.0)
        check_labels(self)
        if self.height % 4 or self.width % 4:
            raise ConfigError(f"PixelCNNPPConfig: height and width must be multiples of 4 (two stride-2 stages), got {self.height}x{self.width}")


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of ``[x, -x]`` along channels: keeps both signs' information (the paper's nonlinearity)."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x[:, :, :-1], (0, 0, 1, 0))


def right_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x[:, :, :, :-1], (1, 0, 0, 0))


class DownShiftedConv2d(nn.Module):
    """Sees the ``kh`` rows ending at the output row, centred horizontally: with ``shift_output_down`` only rows above."""

    def __init__(self, c_in: int, c_out: int, filter_size: tuple[int, int] = (2, 3), stride: int = 1, shift_output_down: bool = False) -> None:
        super().__init__()
        kh, kw = filter_size
        self.filter_size, self.stride, self.shift_output_down = filter_size, stride, shift_output_down
        self.padding = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)  # left, right, top, bottom
        self.conv = weight_norm(nn.Conv2d(c_in, c_out, filter_size, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, self.padding))
        return down_shift(x) if self.shift_output_down else x

    def conv_geometry(self) -> ConvGeometry:
        return ConvGeometry(self.filter_size, self.padding, self.stride, shift_down=self.shift_output_down, weight=_weights(self.conv))


class DownRightShiftedConv2d(nn.Module):
    """Sees the ``kh x kw`` block ending at the output pixel: with ``shift_output_right`` only pixels to the left."""

    def __init__(self, c_in: int, c_out: int, filter_size: tuple[int, int] = (2, 2), stride: int = 1, shift_output_right: bool = False) -> None:
        super().__init__()
        kh, kw = filter_size
        self.filter_size, self.stride, self.shift_output_right = filter_size, stride, shift_output_right
        self.padding = (kw - 1, 0, kh - 1, 0)
        self.conv = weight_norm(nn.Conv2d(c_in, c_out, filter_size, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, self.padding))
        return right_shift(x) if self.shift_output_right else x

    def conv_geometry(self) -> ConvGeometry:
        return ConvGeometry(self.filter_size, self.padding, self.stride, shift_right=self.shift_output_right, weight=_weights(self.conv))


class ShiftedDeconv2d(nn.Module):
    """Stride-2 transposed convolution cropped to twice the input size so an output row only sees input rows at or above it.

    ``col_offset`` is where the crop starts in each row: centred (down-shifted) or at the left edge
    (down-right-shifted). The fast sampler reads the same attribute.
    """

    def __init__(self, c_in: int, c_out: int, filter_size: tuple[int, int], col_offset: int) -> None:
        super().__init__()
        self.filter_size, self.col_offset = filter_size, col_offset
        self.deconv = weight_norm(nn.ConvTranspose2d(c_in, c_out, filter_size, 2, output_padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        return self.deconv(x)[:, :, : 2 * h, self.col_offset : self.col_offset + 2 * w]

    def conv_geometry(self) -> ConvGeometry:
        return ConvGeometry(self.filter_size, stride=2, transposed=True, col_offset=self.col_offset, weight=_weights(self.deconv))


def _weights(layer: nn.Module):
    """The effective (weight-normalised) weights of a layer, read when a sampler starts."""
    return lambda: (layer.weight, layer.bias)


class DownShiftedDeconv2d(ShiftedDeconv2d):
    def __init__(self, c_in: int, c_out: int, filter_size: tuple[int, int] = (2, 3)) -> None:
        super().__init__(c_in, c_out, filter_size, (filter_size[1] - 1) // 2)


class DownRightShiftedDeconv2d(ShiftedDeconv2d):
    def __init__(self, c_in: int, c_out: int, filter_size: tuple[int, int] = (2, 2)) -> None:
        super().__init__(c_in, c_out, filter_size, 0)


class NIN(nn.Module):
    """A weight-normalised 1x1 convolution ("network in network"), kept as a Linear like the reference."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.lin_a = weight_norm(nn.Linear(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin_a(x.movedim(1, -1)).movedim(-1, 1)


class GatedResnet(nn.Module):
    """``x + a * sigmoid(b)`` where ``[a, b]`` come from two convolutions of concat_elu(x), plus skip and class inputs."""

    def __init__(self, filters: int, conv: type[nn.Module], skip: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.conv_input = conv(2 * filters, filters)
        if skip:
            self.nin_skip = NIN(2 * skip * filters, filters)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * filters, 2 * filters)
        if num_classes:
            self.class_embed = nn.Embedding(num_classes, 2 * filters)  # openai/pixel-cnn's conditional "hw"
            nn.init.zeros_(self.class_embed.weight)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_input(concat_elu(x))
        if a is not None:
            h = h + self.nin_skip(concat_elu(a))
        h = self.conv_out(self.dropout(concat_elu(h)))
        if cond is not None:
            h = h + self.class_embed(cond)[:, :, None, None]
        value, gate = h.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


class PixelCNNLayerUp(nn.Module):
    def __init__(self, nr_resnet: int, filters: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.u_stream = nn.ModuleList(GatedResnet(filters, DownShiftedConv2d, 0, dropout, num_classes) for _ in range(nr_resnet))
        self.ul_stream = nn.ModuleList(GatedResnet(filters, DownRightShiftedConv2d, 1, dropout, num_classes) for _ in range(nr_resnet))


class PixelCNNLayerDown(nn.Module):
    def __init__(self, nr_resnet: int, filters: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        self.u_stream = nn.ModuleList(GatedResnet(filters, DownShiftedConv2d, 1, dropout, num_classes) for _ in range(nr_resnet))
        self.ul_stream = nn.ModuleList(GatedResnet(filters, DownRightShiftedConv2d, 2, dropout, num_classes) for _ in range(nr_resnet))


@register_family(
    "pixelcnn++",
    config=PixelCNNPPConfig,
    presets={
        "tiny": dict(height=8, width=8, nr_resnet=1, nr_filters=8, nr_logistic_mix=2, dropout=0.0),
        "paper": dict(nr_resnet=5, nr_filters=160, nr_logistic_mix=10, dropout=0.5),  # the paper's CIFAR-10 model
        "small": dict(nr_resnet=2, nr_filters=64, nr_logistic_mix=5, dropout=0.1),
    },
)
class PixelCNNPP(ImageModel):
    def __init__(self, config: PixelCNNPPConfig) -> None:
        mixture = DiscretizedLogisticMixture(config.levels, config.nr_logistic_mix, config.channels, log_scale_min=-7.0)
        super().__init__(config, distribution=mixture, labels=config.labels)
        c = config
        f, k, r = c.nr_filters, self.num_conditions, c.nr_resnet
        self.up_layers = nn.ModuleList(PixelCNNLayerUp(r, f, c.dropout, k) for _ in range(3))
        self.down_layers = nn.ModuleList(PixelCNNLayerDown(n, f, c.dropout, k) for n in (r, r + 1, r + 1))
        self.downsize_u_stream = nn.ModuleList(DownShiftedConv2d(f, f, stride=2) for _ in range(2))
        self.downsize_ul_stream = nn.ModuleList(DownRightShiftedConv2d(f, f, stride=2) for _ in range(2))
        self.upsize_u_stream = nn.ModuleList(DownShiftedDeconv2d(f, f) for _ in range(2))
        self.upsize_ul_stream = nn.ModuleList(DownRightShiftedDeconv2d(f, f) for _ in range(2))
        self.u_init = DownShiftedConv2d(c.channels + 1, f, (2, 3), shift_output_down=True)
        self.ul_init = nn.ModuleList([
            DownShiftedConv2d(c.channels + 1, f, (1, 3), shift_output_down=True),
            DownRightShiftedConv2d(c.channels + 1, f, (2, 1), shift_output_right=True),
        ])
        self.nin_out = NIN(f, mixture.num_params)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mixture parameters ``[N, P, H, W]`` for ``x`` in [-1, 1]; the output at a pixel sees only earlier pixels."""
        return run_graph(self.graph(cond), with_border(x))[OUTPUT]

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> DependencyCache:
        return DependencyCache(self, levels, cond, self.graph(cond), with_border, first_row)

    def graph(self, cond: torch.Tensor | None = None) -> list[Op]:
        """The network as ops over named activations: the one definition both ``forward`` and fast sampling run."""
        ops: list[Op] = []

        def add(kind: str, module: Any, *inputs: str, pre: Any = None) -> str:
            ops.append(Op(kind, f"a{len(ops)}", inputs, module, pre))
            return ops[-1].out

        def resnet(block: GatedResnet, x: str, *skip: str) -> str:
            h = add("conv", block.conv_input, x, pre=concat_elu)
            if skip:
                h = add("point", lambda h, *a: h + block.nin_skip(concat_elu(torch.cat(a, dim=1))), h, *skip)
            c = add("conv", block.conv_out, h, pre=lambda t: block.dropout(concat_elu(t)))
            embed = block.class_embed(cond)[:, :, None, None] if cond is not None else None
            return add("point", lambda x, c: x + _gate(c if embed is None else c + embed), x, c)

        u_list = [add("conv", self.u_init, INPUT)]
        ul_list = [add("point", torch.add, add("conv", self.ul_init[0], INPUT), add("conv", self.ul_init[1], INPUT))]
        for i, layer in enumerate(self.up_layers):
            for u_block, ul_block in zip(layer.u_stream, layer.ul_stream, strict=True):
                u_list.append(resnet(u_block, u_list[-1]))
                ul_list.append(resnet(ul_block, ul_list[-1], u_list[-1]))
            if i < 2:
                u_list.append(add("conv", self.downsize_u_stream[i], u_list[-1]))
                ul_list.append(add("conv", self.downsize_ul_stream[i], ul_list[-1]))
        u, ul = u_list.pop(), ul_list.pop()
        for i, layer in enumerate(self.down_layers):
            for u_block, ul_block in zip(layer.u_stream, layer.ul_stream, strict=True):
                u = resnet(u_block, u, u_list.pop())
                ul = resnet(ul_block, ul, u, ul_list.pop())
            if i < 2:
                u, ul = add("deconv", self.upsize_u_stream[i], u), add("deconv", self.upsize_ul_stream[i], ul)
        ops.append(Op("point", OUTPUT, (ul,), lambda t: self.nin_out(F.elu(t)), None))
        return ops


def with_border(x: torch.Tensor) -> torch.Tensor:
    """The input activation: the image and a constant channel that marks the image border (zero padding outside)."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


def _gate(h: torch.Tensor) -> torch.Tensor:
    value, gate = h.chunk(2, dim=1)
    return value * torch.sigmoid(gate)
