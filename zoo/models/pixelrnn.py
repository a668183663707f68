"""PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): Row LSTM and Diagonal BiLSTM.

A 7x7 mask-A convolution, ``n_layers`` LSTM layers each followed by a mask-B 1x1 residual
connection (the residual stream has 2h channels, the LSTM state h), two ReLU 1x1 mask-B output
layers and a Bernoulli logit or a 256-way softmax per channel.

- Row LSTM: a whole row is one step. Input-to-state is a mask-B ``1 x k`` convolution of the
  current row; state-to-state a ``k``-wide 1-D convolution of the previous row's hidden state.
- Diagonal BiLSTM: the map is skewed so each diagonal is a column; a column step reads, for each
  pixel, the state to its left and the state above (a ``2 x 1`` state-to-state convolution). The
  right-to-left direction runs on the mirrored image and its output is shifted down a row, so a
  pixel sees the rows above and the pixels to its left, nothing later. One corner stays out, as in
  the paper's design: the right-to-left input at (r-1, W-1), a mask-B feature, excludes that
  pixel's last colour, which reaches (r, c) only through the input convolution's reach. States
  outside the image are zero, which is what makes the per-pixel sampler below exact.

Colour channels are generated R -> G -> B inside a pixel: every LSTM gate block (o, f, i, g) and
the state keep one colour group per channel, and only the current-pixel taps are group-masked.

Sampling carries the recurrences instead of recomputing the image (``RecurrentState``): per
layer it keeps the current row's layer inputs and states and the previous row's states. A new
pixel costs one LSTM cell per layer; the Diagonal BiLSTM's right-to-left direction, which needs
a complete row, is swept once per row over the row just finished.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..image import ImageCache, ImageModel, pixel_distribution
from ..layers import MaskedConv2d, RowMaskedConv2d, channel_groups, diagonal_order, paired_groups
from ..registry import register_family
from ..validation import check_choice, check_labels, check_odd, check_positive

__all__ = ["DiagonalBiLSTM", "PixelRNN", "PixelRNNConfig", "RecurrentState", "RowLSTM"]

KINDS = ("row-lstm", "diagonal-bilstm")


@dataclass
class PixelRNNConfig:
    height: int = 28
    width: int = 28
    channels: int = 1
    levels: int = 2  # 2: Bernoulli output; 256: 256-way softmax
    kind: str = "diagonal-bilstm"  # "row-lstm" | "diagonal-bilstm"
    hidden: int = 16  # "h": LSTM state size; the residual stream has 2h channels
    n_layers: int = 7
    input_kernel: int = 7
    row_kernel: int = 3  # Row LSTM: width of the input-to-state and state-to-state convolutions
    output_hidden: int = 32
    labels: list[str] | None = None  # unconditional: must stay empty (the field keeps every image config alike)

    def __post_init__(self) -> None:
        check_positive(self, "height", "width", "channels", "hidden", "n_layers", "output_hidden")
        check_odd(self, "input_kernel", "row_kernel")
        check_choice(self, "levels", (2, 256))
        check_choice(self, "kind", KINDS)
        check_labels(self, allowed=False)
        for name in ("hidden", "output_hidden"):
            if getattr(self, name) < self.channels:
                raise ConfigError(f"PixelRNNConfig.{name}={getattr(self, name)} must be at least channels ({self.channels})")


def lstm_cell(gates: torch.Tensor, c: torch.Tensor | None, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activations ordered ``[o, f, i, g]`` along ``dim``; ``c=None`` is a zero cell."""
    n = gates.shape[dim] // 4
    o, f, i = gates.narrow(dim, 0, 3 * n).sigmoid().chunk(3, dim)
    g = gates.narrow(dim, 3 * n, n).tanh()
    c = i * g if c is None else torch.addcmul(f * c, i, g)
    return o * c.tanh(), c


class RowLSTM(nn.Module):
    def __init__(self, hidden: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.hidden, self.k = hidden, kernel
        self.input_to_state = RowMaskedConv2d(2 * hidden, 4 * hidden, kernel, "B", channel_groups(2 * hidden, groups),
                                              paired_groups(hidden, groups, 4))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        self.residual = MaskedConv2d(hidden, 2 * hidden, 1, "B", groups)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """Output map and every pixel's ``h``/``c`` ``[N, hidden, H, W]`` (kept to start a sampler)."""
        pre = self.input_to_state(x).unbind(2)  # one slice per row; unbind's backward is a single stack
        h_rows, c_rows, h, c = [], [], None, None
        for row in range(x.shape[2]):
            gates = pre[row] if h is None else pre[row] + self.state_to_state(h)
            h, c = lstm_cell(gates, c, 1)
            h_rows.append(h)
            c_rows.append(c)
        hs, cs = torch.stack(h_rows, 2), torch.stack(c_rows, 2)
        return x + self.residual(hs), {"h": hs, "c": cs}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    # ---- sampler
    def start(self, x: torch.Tensor, inner: dict[str, Any] | None, first_row: int) -> dict[str, Any]:
        n, _, _, w = x.shape
        zeros = x.new_zeros(n, self.hidden, w)
        done = inner is not None and first_row > 0
        return {"h": inner["h"][:, :, first_row - 1] if done else zeros, "c": inner["c"][:, :, first_row - 1] if done else zeros,
                "x": x.new_zeros(n, 2 * self.hidden, w + self.k // 2)}

    def new_row(self, s: dict[str, Any], row: int) -> None:
        """Row ``row`` starts: the finished row's states become the recurrence input."""
        s["ss"] = self.state_to_state(s["h"])
        s["c_prev"] = s["c"]
        s["h"], s["c"] = torch.zeros_like(s["h"]), torch.zeros_like(s["c"])
        s["x"].zero_()
        s["first"] = row == 0

    def step(self, s: dict[str, Any], x: torch.Tensor, col: int) -> torch.Tensor:
        """Output at ``(row, col)`` from the layer input there ``[N, 2h]``; records it for the next pixels."""
        s["x"][:, :, col + self.k // 2] = x
        conv = self.input_to_state
        window = s["x"][:, :, col : col + self.k // 2 + 1]  # the current pixel and k//2 to its left
        gates = F.conv1d(window, (conv.weight * conv.mask)[:, :, 0], conv.bias)[:, :, 0]
        first = s["first"]
        if not first:
            gates = gates + s["ss"][:, :, col]
        h, c = lstm_cell(gates, None if first else s["c_prev"][:, :, col], 1)
        s["h"][:, :, col], s["c"][:, :, col] = h, c
        return x + self.residual(h[:, :, None, None])[:, :, 0, 0]


@functools.lru_cache(maxsize=16)
def _diagonal_gathers(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, tuple[tuple[int, int], ...]]:
    """Rows of a ``[2 * H * W, ...]`` map (left-to-right pixels, then right-to-left ones) in diagonal order.

    The right-to-left direction reads the mirrored image. Returns that gather, its inverse (which
    puts states computed in diagonal order back in pixel order) and each skewed column's row span.
    """
    order, spans = diagonal_order(height, width)
    with torch.inference_mode(False):  # cached: a tensor made under inference_mode could never be used for training
        mirrored = order // width * width + (width - 1 - order % width)
        gather = torch.cat([order, mirrored + height * width])
        position = torch.empty_like(gather)
        position[gather] = torch.arange(len(gather))
    return gather, position, spans


class DiagonalBiLSTM(nn.Module):
    def __init__(self, hidden: int, groups: int) -> None:
        super().__init__()
        self.hidden = hidden
        # Both directions' input-to-state 1x1 convolutions in one: [left (4h), right (4h)].
        self.input_to_state = RowMaskedConv2d(2 * hidden, 8 * hidden, 1, "B", channel_groups(2 * hidden, groups),
                                              paired_groups(hidden, groups, 8))
        # State-to-state [direction, tap (0: the pixel above, 1: the pixel before), in, out].
        bound = 1 / math.sqrt(2 * hidden)
        self.state_to_state = nn.Parameter(torch.empty(2, 2, hidden, 4 * hidden).uniform_(-bound, bound))
        self.residual = MaskedConv2d(hidden, 2 * hidden, 1, "B", groups)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        """Output map and the per-pixel hidden states ``[N, hidden, H, W]`` of both directions (right one unshifted).

        The skewed map is held as one gather of the pixels in diagonal order (both directions, the
        right one mirrored), so each column of the skew is a dense ``[2, rows, N, 4h]`` block and no
        padding outside the image is stored or computed; one more gather puts the states back.
        """
        n, _, height, width = x.shape
        hid, pixels = self.hidden, height * width
        gather, position, spans = _diagonal_gathers(height, width)
        conv = self.input_to_state
        weight = (conv.weight * conv.mask)[:, :, 0, 0].view(2, 4 * hid, 2 * hid).transpose(1, 2)  # [direction, 2h, 4h]
        rows_first = x.permute(2, 3, 0, 1).reshape(1, pixels * n, 2 * hid)
        pre = torch.baddbmm(conv.bias.view(2, 1, 4 * hid), rows_first.expand(2, -1, -1), weight)  # [2, HW*N, 4h]
        pre = pre.view(2 * pixels, n * 4 * hid).index_select(0, gather.to(x.device)).view(2, pixels, n, 4 * hid)
        # Both taps in one matmul: [h above, h before] @ [w_above; w_before], per direction.
        state_weight = self.state_to_state.reshape(2, 2 * hid, 4 * hid).to(pre.dtype)
        h = c = None
        hs, prev_top = [], 0
        columns = pre.split([bottom - top + 1 for top, bottom in spans], 1)  # split: one backward for all
        for gates, (top, bottom) in zip(columns, spans, strict=True):
            # This column holds image rows [top, bottom]. The zero padding around the previous
            # column's rows [prev_top, prev_bottom] is the zero state outside the image.
            if h is not None:
                h_pad, c_pad = F.pad(h, (0, 0, 0, 0, 1, 1)), F.pad(c, (0, 0, 0, 0, 1, 1))  # rows prev_top-1 .. prev_bottom+1
                before = slice(top - prev_top + 1, bottom - prev_top + 2)
                above = slice(top - prev_top, bottom - prev_top + 1)
                inputs = torch.cat([h_pad[:, above], h_pad[:, before]], -1)
                gates = torch.baddbmm(gates.flatten(1, 2), inputs.flatten(1, 2), state_weight).view(gates.shape)
                c = c_pad[:, before]
            h, c = lstm_cell(gates, c, -1)
            hs.append(h)
            prev_top = top
        states = torch.cat(hs, 1).view(2 * pixels, n * hid).index_select(0, position.to(x.device))
        h_left, h_right = states.view(2, height, width, n, hid).unbind(0)  # [H, W, N, hid] each, pixel order
        out = h_left + F.pad(h_right, (0, 0, 0, 0, 0, 0, 1, 0))[:height]  # the right direction one row down
        res = self.residual
        out = F.linear(out, (res.weight * res.mask)[:, :, 0, 0], res.bias).permute(2, 3, 0, 1)
        return x + out, {"h_left": h_left.permute(2, 3, 0, 1), "h_right": h_right.permute(2, 3, 0, 1)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    # ---- sampler
    def start(self, x: torch.Tensor, inner: dict[str, Any] | None, first_row: int) -> dict[str, Any]:
        n, _, _, w = x.shape
        zeros = x.new_zeros(n, self.hidden, w)
        s = {"x": x.new_zeros(n, 2 * self.hidden, w), "h_left": zeros, "c_left": zeros.clone(), "h_right": zeros.clone()}
        if inner is not None and first_row > 0:
            s["x"] = x[:, :, first_row - 1].clone()
            s["h_left"] = inner["h_left"][:, :, first_row - 1].clone()
            if first_row > 1:
                s["h_right"] = inner["h_right"][:, :, first_row - 2].clone()
        return s

    def new_row(self, s: dict[str, Any], row: int) -> None:
        """Row ``row`` starts: sweep the right-to-left direction over the finished row ``row - 1``."""
        s["above_left"] = s["h_left"]
        s["h_left"], s["c_left"] = torch.zeros_like(s["h_left"]), torch.zeros_like(s["c_left"])
        if row == 0:
            s["above_right"] = s["h_right"]  # zeros: no row above the first
            return
        conv = self.input_to_state
        pre = F.conv2d(s["x"][:, :, None], conv.weight * conv.mask, conv.bias)[:, 4 * self.hidden :, 0]  # [N, 4h, W]
        w_above, w_before = self.state_to_state[1, 0], self.state_to_state[1, 1]
        above, new = s["h_right"], torch.zeros_like(s["h_right"])
        h = c = None
        for col in reversed(range(pre.shape[2])):
            gates = pre[:, :, col] + above[:, :, col] @ w_above
            if h is not None:
                gates = gates + h @ w_before
            h, c = lstm_cell(gates, c, -1)
            new[:, :, col] = h
        s["h_right"] = s["above_right"] = new

    def step(self, s: dict[str, Any], x: torch.Tensor, col: int) -> torch.Tensor:
        s["x"][:, :, col] = x
        conv = self.input_to_state
        gates = F.linear(x, (conv.weight * conv.mask)[: 4 * self.hidden, :, 0, 0], conv.bias[: 4 * self.hidden])
        gates = gates + s["above_left"][:, :, col] @ self.state_to_state[0, 0]
        c_before = None
        if col > 0:
            gates = gates + s["h_left"][:, :, col - 1] @ self.state_to_state[0, 1]
            c_before = s["c_left"][:, :, col - 1]
        h, c = lstm_cell(gates, c_before, -1)
        s["h_left"][:, :, col], s["c_left"][:, :, col] = h, c
        out = h + s["above_right"][:, :, col]
        return x + self.residual(out[:, :, None, None])[:, :, 0, 0]


@register_family(
    "pixelrnn",
    config=PixelRNNConfig,
    presets={
        "tiny": dict(height=4, width=4, hidden=6, n_layers=2, input_kernel=3, output_hidden=12),
        "tiny-row-lstm": dict(height=4, width=4, kind="row-lstm", hidden=6, n_layers=2, input_kernel=3, output_hidden=12),
        # The paper's binarized-MNIST model (Table 4 / section 5): Diagonal BiLSTM, 7 layers, h=16.
        "paper-mnist": dict(kind="diagonal-bilstm", hidden=16, n_layers=7, output_hidden=32),
        "row-lstm-mnist": dict(kind="row-lstm", hidden=16, n_layers=7, output_hidden=32),
        # The paper's CIFAR-10 models: 12 layers, h=128, 1024-wide output layers.
        "paper-cifar10": dict(height=32, width=32, channels=3, levels=256, hidden=128, n_layers=12, output_hidden=1024),
        "paper-cifar10-row-lstm": dict(height=32, width=32, channels=3, levels=256, kind="row-lstm", hidden=128, n_layers=12,
                                       output_hidden=1024),
    },
)
class PixelRNN(ImageModel):
    def __init__(self, config: PixelRNNConfig) -> None:
        super().__init__(config, distribution=pixel_distribution(config.levels, config.channels))
        c, g = config, config.channels
        self.input = MaskedConv2d(g, 2 * c.hidden, c.input_kernel, "A", g)
        self.layers = nn.ModuleList(
            RowLSTM(c.hidden, c.row_kernel, g) if c.kind == "row-lstm" else DiagonalBiLSTM(c.hidden, g) for _ in range(c.n_layers)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(2 * c.hidden, c.output_hidden, 1, "B", g),
            nn.ReLU(),
            MaskedConv2d(c.output_hidden, self.distribution.num_params, 1, "B", g),
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, C * K, H, W]`` (channel-major; K = 1 for binary) for inputs ``x`` scaled to [-1, 1]."""
        h = self.input(x)
        for layer in self.layers:
            h = layer(h)
        return self.output(h)

    def incremental_cache(self, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> RecurrentState:
        return RecurrentState(self, levels, cond, first_row)

    def input_at(self, levels: torch.Tensor, row: int, col: int) -> torch.Tensor:
        """The mask-A input convolution at one pixel ``[N, 2h]``, from the rows above and the pixels before it."""
        conv, p = self.input, self.config.input_kernel // 2
        top = max(0, row - p)
        patch = self.space.to_unit(levels[:, :, top : row + 1], self.dtype)
        patch = F.pad(patch, (p, p, p - (row - top), 0))[:, :, :, col : col + 2 * p + 1]
        return F.conv2d(patch, (conv.weight * conv.mask)[:, :, : p + 1], conv.bias)[:, :, 0, 0]


class RecurrentState(ImageCache):
    """PixelRNN's fast path: per layer the recurrent states of the current and previous rows, after one forward over the
    known rows. A step costs one LSTM cell per layer; the Diagonal BiLSTM's right-to-left sweep runs once per row."""

    def __init__(self, model: PixelRNN, levels: torch.Tensor, cond: torch.Tensor | None, first_row: int) -> None:
        super().__init__(model, levels, cond)
        n, _, _, w = levels.shape
        blank = levels.new_zeros(n, 2 * model.config.hidden, 1, w, dtype=model.dtype)
        self.states = []
        h = model.input(self.unit(levels[:, :, :first_row])) if first_row else None
        for layer in model.layers:
            if h is None:
                self.states.append(layer.start(blank, None, 0))
            else:
                out, inner = layer.run(h)
                self.states.append(layer.start(h, inner, first_row))
                h = out
        self.row: int | None = None

    def params_at(self, t: int) -> torch.Tensor:
        row, col, channel = self.position(t)
        model = self.model
        if row != self.row:
            for layer, s in zip(model.layers, self.states, strict=True):
                layer.new_row(s, row)
            self.row = row
        # Each channel's step recomputes the pixel from its layer inputs; the last one leaves its final values in the
        # states: nothing at (row, col) depends on the last channel of (row, col) itself.
        h = model.input_at(self.levels, row, col)
        for layer, s in zip(model.layers, self.states, strict=True):
            h = layer.step(s, h, col)
        return model.distribution.channel_params(model.output(h[:, :, None, None])[:, :, 0, 0], channel)
