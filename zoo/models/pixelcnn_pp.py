"""PixelCNN++ (Salimans et al. 2017; reference openai/pixel-cnn, PyTorch port pclucas14/pixel-cnn-pp).

Two streams replace masked convolutions: ``u`` sees the rows above (down-shifted convolutions),
``ul`` sees the rows above and the pixels to the left (down-right-shifted convolutions). Gated
ResNet blocks with concat_elu, three resolutions joined U-net style, weight normalisation, and a
discretized logistic mixture whose colour channels are linearly coupled R -> G -> B.

Module names follow pclucas14/pixel-cnn-pp, so a state dict of theirs maps onto ours by renaming
the weight-norm parameters (``tools/convert_pixelcnn_pp.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from ..image import ImageModel
from ..registry import register_family


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


# ---------------------------------------------------------------- discretized logistic mixture
def mixture_log_probs(params: torch.Tensor, x: torch.Tensor, nr_mix: int) -> torch.Tensor:
    """``log p(x_c | x_<c)`` per channel ``[N, C, H, W]`` under the discretized logistic mixture.

    ``params [N, P, H, W]`` are the network outputs, ``x [N, C, H, W]`` the image in [-1, 1] on the
    256-level grid. Per component the channels are computed exactly as openai/pixel-cnn does
    (edge bins to +/- infinity, the pdf fallback below 1e-5, log-scales clamped at -7); the
    mixture over the shared component then splits exactly into per-channel conditionals through
    cumulative log-sum-exps, which sum to the reference's joint log-likelihood.
    """
    n, c, h, w = x.shape
    logit_probs = params[:, :nr_mix]
    rest = params[:, nr_mix:].reshape(n, c, -1, nr_mix, h, w)  # [N, C, 2 or 3, M, H, W]
    means, log_scales = rest[:, :, 0], rest[:, :, 1].clamp(min=-7.0)
    xs = x.unsqueeze(2)  # [N, C, 1, H, W]
    if c == 3:
        coeffs = torch.tanh(rest[:, :, 2])
        means = torch.stack([
            means[:, 0],
            means[:, 1] + coeffs[:, 0] * xs[:, 0],
            means[:, 2] + coeffs[:, 1] * xs[:, 0] + coeffs[:, 2] * xs[:, 1],
        ], dim=1)
    centered = xs - means
    inv_stdv = torch.exp(-log_scales)
    plus_in = inv_stdv * (centered + 1.0 / 255.0)
    min_in = inv_stdv * (centered - 1.0 / 255.0)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # x = 0 (left edge bin)
    log_one_minus_cdf_min = -F.softplus(min_in)  # x = 255 (right edge bin)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_stdv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log(127.5))
    per_component = torch.where(xs < -0.999, log_cdf_plus, torch.where(xs > 0.999, log_one_minus_cdf_min, interior))
    # log p(x_0..x_c, k) for every prefix of channels, then p(x_c | x_<c) = p(x_<=c) / p(x_<c).
    joint = torch.logsumexp(per_component.cumsum(1) + F.log_softmax(logit_probs, dim=1).unsqueeze(1), dim=2)
    return torch.cat([joint[:, :1], joint[:, 1:] - joint[:, :-1]], dim=1)


def sample_mixture(params: torch.Tensor, nr_mix: int, channels: int, temperature: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Levels ``[N, C]`` drawn from the mixture at one pixel, ``params [N, P]``.

    Exact for the discretized likelihood: a continuous logistic draw, clamped and rounded to the
    256-level grid, falls in each bin with that bin's probability; the coupling uses the rounded
    (actually drawn) values, as the likelihood does. ``temperature`` divides the mixture logits
    and multiplies the logistic scales.
    """
    n = params.shape[0]
    logit_probs = params[:, :nr_mix].float()
    rest = params[:, nr_mix:].float().reshape(n, channels, -1, nr_mix)
    component = torch.multinomial(F.softmax(logit_probs / temperature, dim=-1), 1, generator=generator)  # [N, 1]
    chosen = rest.gather(3, component[:, None, None, :].expand(n, channels, rest.shape[2], 1))[..., 0]  # [N, C, 2|3]
    u = torch.rand(n, channels, generator=generator, device=params.device) * (1 - 2e-5) + 1e-5
    noise = torch.exp(chosen[:, :, 1].clamp(min=-7.0)) * temperature * (torch.log(u) - torch.log1p(-u))
    levels = torch.empty(n, channels, dtype=torch.long, device=params.device)
    values: list[torch.Tensor] = []
    for c in range(channels):
        mean = chosen[:, c, 0]
        if c > 0:
            coeffs = torch.tanh(chosen[:, :, 2])
            mean = mean + coeffs[:, 0 if c == 1 else 1] * values[0] + (coeffs[:, 2] * values[1] if c == 2 else 0.0)
        level = torch.round((torch.clamp(mean + noise[:, c], -1.0, 1.0) + 1.0) * 127.5)
        levels[:, c] = level.long()
        values.append(level / 127.5 - 1.0)
    return levels


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
    family = "pixelcnn++"

    def __init__(self, config: PixelCNNPPConfig) -> None:
        super().__init__(config)
        c = config
        if c.levels != 256:
            raise ConfigError(f"PixelCNN++ models 8-bit images: levels must be 256, got {c.levels}")
        if c.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {c.channels}")
        if c.height % 4 or c.width % 4:
            raise ConfigError(f"height and width must be multiples of 4 (two stride-2 stages), got {c.height}x{c.width}")
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
        self.params_per_mix = 10 if c.channels == 3 else 3  # logit + (mean, log-scale[, coeff]) per channel
        self.nin_out = NIN(f, self.params_per_mix * c.nr_logistic_mix)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mixture parameters ``[N, P, H, W]`` for ``x`` in [-1, 1]; the output at a pixel sees only earlier pixels."""
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # the constant channel marks the image border
        return run_graph(self.graph(cond), x)[OUTPUT]

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

    def per_dim_log_prob(self, levels: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = self.space.to_unit(levels, self.dtype)
        params = self(x, cond).float()
        return mixture_log_probs(params, x.float(), self.config.nr_logistic_mix)

    def sample_pixel(self, levels, cond, row, col, temperature, generator, state: FastSampler | None) -> None:
        if state is None:  # naive: the whole network on the whole image, for every pixel
            params = self(self.space.to_unit(levels, self.dtype), cond)[:, :, row, col]
        else:
            params = state.params_at(row, col)
        value = sample_mixture(params, self.config.nr_logistic_mix, self.config.channels, temperature, generator)
        levels[:, :, row, col] = value
        if state is not None:
            state.set_pixel(row, col, self.space.to_unit(value, self.dtype))

    def sampling_state(self, levels, cond, first_row) -> FastSampler:
        return FastSampler(self, levels, cond, first_row)


def _gate(h: torch.Tensor) -> torch.Tensor:
    value, gate = h.chunk(2, dim=1)
    return value * torch.sigmoid(gate)


# ---------------------------------------------------------------- the op graph and fast sampling
INPUT, OUTPUT = "input", "output"


@dataclass
class Op:
    """``out = module(pre(input))`` for ``conv``/``deconv``; ``out = module(*inputs)`` for a pointwise ``point`` op."""

    kind: str
    out: str
    inputs: tuple[str, ...]
    module: Any
    pre: Any = None


def run_graph(ops: list[Op], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every activation of the network for input ``x`` (image channels plus the constant channel)."""
    acts = {INPUT: x}
    for op in ops:
        args = [acts[name] for name in op.inputs]
        if op.kind == "point":
            acts[op.out] = op.module(*args)
        else:
            acts[op.out] = op.module(op.pre(args[0]) if op.pre is not None else args[0])
    return acts


def dependency_maps(ops: list[Op], height: int, width: int) -> dict[str, torch.Tensor]:
    """For every activation, the raster index of the last input pixel each position depends on (-1: none).

    Found by running the graph's geometry with max in place of sums, so it is exact for any
    config; the fast sampler computes each position once, right after that pixel is drawn.
    """
    deps = {INPUT: torch.arange(height * width, dtype=torch.float64).view(1, 1, height, width)}
    for op in ops:
        first = deps[op.inputs[0]]
        if op.kind == "point":
            deps[op.out] = torch.stack([deps[name] for name in op.inputs]).amax(0)
        elif op.kind == "conv":
            m = op.module
            out = F.max_pool2d(F.pad(first + 1, m.padding), m.filter_size, m.stride) - 1  # padding reads as -1
            if getattr(m, "shift_output_down", False):
                out = F.pad(out[:, :, :-1], (0, 0, 1, 0), value=-1)
            if getattr(m, "shift_output_right", False):
                out = F.pad(out[:, :, :, :-1], (1, 0, 0, 0), value=-1)
            deps[op.out] = out
        else:
            deps[op.out] = _deconv_dependencies(op.module, first)
    return deps


def _deconv_dependencies(module: nn.Module, dep: torch.Tensor) -> torch.Tensor:
    kh, kw = module.filter_size
    h, w = dep.shape[2:]
    full = torch.full((1, 1, 2 * h + kh - 1 + 1, 2 * w + kw - 1 + 1), -1.0, dtype=dep.dtype)
    for a in range(kh):
        for b in range(kw):
            view = full[:, :, a : a + 2 * h : 2, b : b + 2 * w : 2]
            torch.maximum(view, dep, out=view)
    return full[:, :, : 2 * h, module.col_offset : module.col_offset + 2 * w]


class FastSampler:
    """Fast PixelCNN++ sampling (Ramachandran et al. 2017): each activation position is computed once.

    One full forward fills every layer's cache; after each drawn pixel, every op recomputes only
    the positions that just became computable (their last input pixel is the one drawn), on a
    small window of its inputs. The result equals running the whole network per pixel.
    """

    def __init__(self, model: PixelCNNPP, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> None:
        self.ops = model.graph(cond)
        height, width = model.config.height, model.config.width
        self.width = width
        deps = dependency_maps(self.ops, height, width)
        self.schedule: list[list[tuple[Op, int, int, int, int]]] = [[] for _ in range(height * width)]
        for op in self.ops:
            dep = deps[op.out][0, 0].long()
            for step in dep.unique().tolist():
                if step < 0:
                    continue
                rows, cols = (dep == step).nonzero(as_tuple=True)
                self.schedule[step].append((op, int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1))
        x = model.space.to_unit(levels, model.dtype)
        self.acts = run_graph(self.ops, torch.cat([x, torch.ones_like(x[:, :1])], dim=1))
        self.weights = {id(op.module): _effective_weights(op.module) for op in self.ops if op.kind != "point"}

    def params_at(self, row: int, col: int) -> torch.Tensor:
        return self.acts[OUTPUT][:, :, row, col]

    def set_pixel(self, row: int, col: int, value: torch.Tensor) -> None:
        """Write the drawn pixel (in [-1, 1]) and compute what it makes computable."""
        self.acts[INPUT][:, : value.shape[1], row, col] = value
        for op, r0, r1, c0, c1 in self.schedule[row * self.width + col]:
            self.acts[op.out][:, :, r0:r1, c0:c1] = self._compute(op, r0, r1, c0, c1)

    def _compute(self, op: Op, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        if op.kind == "point":
            return op.module(*[self.acts[name][:, :, r0:r1, c0:c1] for name in op.inputs])
        source = self.acts[op.inputs[0]]
        m = op.module
        weight, bias = self.weights[id(m)]
        kh, kw = m.filter_size
        if op.kind == "deconv":
            off = m.col_offset
            i0, i1 = max(0, -(-(r0 - kh + 1) // 2)), min(source.shape[2], (r1 - 1) // 2 + 1)
            j0, j1 = max(0, -(-(c0 + off - kw + 1) // 2)), min(source.shape[3], (c1 - 1 + off) // 2 + 1)
            out = F.conv_transpose2d(source[:, :, i0:i1, j0:j1], weight, bias, stride=2)
            y0, x0 = r0 - 2 * i0, c0 + off - 2 * j0
            return out[:, :, y0 : y0 + r1 - r0, x0 : x0 + c1 - c0]
        # A shifted conv's output at (r, c) is the unshifted conv's at (r - 1, c) or (r, c - 1).
        down, right = int(getattr(m, "shift_output_down", False)), int(getattr(m, "shift_output_right", False))
        left, _, top, _ = m.padding
        s = m.stride
        rows = (s * (r0 - down) - top, s * (r1 - 1 - down) - top + kh)
        cols = (s * (c0 - right) - left, s * (c1 - 1 - right) - left + kw)
        window = _window(source, *rows, *cols)
        if op.pre is not None:
            window = op.pre(window)
        return F.conv2d(window, weight, bias, stride=s)


def _effective_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    layer = module.deconv if hasattr(module, "deconv") else module.conv
    return layer.weight.detach(), layer.bias.detach()


def _window(x: torch.Tensor, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    """``x[:, :, r0:r1, c0:c1]`` with zeros where the window leaves the tensor (the convolutions' zero padding)."""
    h, w = x.shape[2:]
    inner = x[:, :, max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)]
    pad = (max(0, -c0), max(0, c1 - w), max(0, -r0), max(0, r1 - h))
    return F.pad(inner, pad) if any(pad) else inner
