"""Building blocks shared by the image families: causal (masked) convolutions, gated units, skewing."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .graph import ConvGeometry

__all__ = ["MaskedConv2d", "RowMaskedConv2d", "causal_mask", "centre_tap_mask", "channel_groups", "diagonal_order", "gated_activation",
           "pair_taps", "paired_groups"]


def channel_groups(n: int, groups: int) -> torch.Tensor:
    """Colour group (0 = R, 1 = G, 2 = B) of each of ``n`` channels: ``groups`` contiguous, near-equal blocks.

    Any fixed assignment keeps the network causal; near-equal blocks give each colour the same capacity.
    """
    if n < groups:
        raise ValueError(f"{n} channels cannot be split into {groups} colour groups")
    return torch.arange(n, device="cpu") * groups // n  # CPU even under the meta-device check: n small ints


def causal_mask(out_channels: int, in_channels: int, kernel_size: int, mask_type: str, groups: int = 1) -> torch.Tensor:
    """Mask of a raster-order causal convolution (van den Oord et al. 2016).

    Taps below the centre row and right of the centre are cut. At the centre tap, output group ``g``
    sees input group ``g'`` only if ``g' < g`` (mask ``A``, first layer) or ``g' <= g`` (mask ``B``),
    so channel R never sees the current pixel, G sees its R, B sees its R and G.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    c = kernel_size // 2
    mask = torch.ones(out_channels, in_channels, kernel_size, kernel_size)
    mask[:, :, c, c + 1 :] = 0
    mask[:, :, c + 1 :, :] = 0
    og = channel_groups(out_channels, groups)[:, None]
    ig = channel_groups(in_channels, groups)[None, :]
    mask[:, :, c, c] = (ig < og if mask_type == "A" else ig <= og).float()
    return mask


def _shape_only(weight: torch.Tensor) -> torch.Tensor:
    """A mask on the meta device, where a checkpoint's config is checked against its weights' shapes first: its values
    do not matter there, and computing them (comparisons on meta tensors) would import torch._dynamo, a second."""
    return torch.empty(weight.shape, device="meta")


class MaskedConv2d(nn.Conv2d):
    """A same-size convolution whose weights are multiplied by a fixed :func:`causal_mask`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = _shape_only(self.weight) if self.weight.is_meta else causal_mask(out_channels, in_channels, kernel_size, mask_type, groups)
        self.register_buffer("mask", mask, persistent=False)
        self.colour_groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def conv_geometry(self) -> ConvGeometry:
        k, p, g = self.kernel_size, self.padding, self.colour_groups
        out_groups, in_groups = channel_groups(self.out_channels, g), channel_groups(self.in_channels, g)
        return ConvGeometry(k, (p[1], p[1], p[0], p[0]), taps=pair_taps(self.mask, out_groups, in_groups),
                            weight=lambda: (self.weight * self.mask, self.bias), out_groups=out_groups)


def pair_taps(mask: torch.Tensor, out_groups: torch.Tensor, in_groups: torch.Tensor) -> torch.Tensor:
    """Live taps of a masked convolution per pair of colour groups, ``[G_out, G_in, kh, kw]`` on the CPU: what the fast
    sampler schedules by (a tap is live for a pair when the mask keeps it for any of their channels)."""
    groups = int(max(out_groups.max(), in_groups.max())) + 1
    live = mask.detach().cpu() != 0
    return torch.stack([torch.stack([live[out_groups == go][:, in_groups == gi].any(0).any(0) for gi in range(groups)])
                        for go in range(groups)])


def centre_tap_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, mask_type: str) -> torch.Tensor:
    """``[out, in]`` mask of the tap at the current pixel, from each channel's colour group.

    Takes explicit group vectors so gated layers can give both halves of a ``tanh x sigmoid`` pair
    (or the four LSTM gates) the same group: otherwise a gate of colour G could be driven by B.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    og, ig = out_groups[:, None], in_groups[None, :]
    return (ig < og if mask_type == "A" else ig <= og).float()


def paired_groups(channels: int, groups: int, copies: int) -> torch.Tensor:
    """Colour groups of ``copies`` stacked blocks of ``channels`` (gate pre-activations), each grouped alike."""
    return channel_groups(channels, groups).repeat(copies)


def gated_activation(x: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` for ``x = [a, b]`` split on channels: the gated unit of Gated PixelCNN / WaveNet."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


@functools.lru_cache(maxsize=16)
def diagonal_order(height: int, width: int) -> tuple[torch.Tensor, tuple[tuple[int, int], ...]]:
    """PixelRNN's skewing as an index: the pixels ``r * width + c`` column by column of the skewed map.

    Skewing shifts row ``r`` right by ``r``, so column ``k`` of the skewed map is the anti-diagonal
    ``r + c = k`` and a column-wise recurrence visits pixels whose left and upper neighbours are done.
    Returns the order (rows ascending inside a column) and each column's row span ``(top, bottom)``.
    Gathering with the order skews a flattened map; scattering back (or gathering with its inverse) unskews it.
    """
    spans = tuple((max(0, k - width + 1), min(height - 1, k)) for k in range(height + width - 1))
    order = [r * width + (k - r) for k, (top, bottom) in enumerate(spans) for r in range(top, bottom + 1)]
    with torch.inference_mode(False):  # cached: a tensor made under inference_mode could never be used for training
        return torch.tensor(order), spans


class RowMaskedConv2d(nn.Conv2d):
    """A ``1 x (k//2+1)`` convolution over the current pixel and the ``k//2`` left of it, same size.

    Only the current-pixel tap is channel-group masked (``A``/``B`` by :func:`centre_tap_mask`);
    explicit group vectors let gate pre-activations keep one group per gate pair. Used by Gated
    PixelCNN's horizontal stack and PixelRNN's input-to-state convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str,
                 in_groups: torch.Tensor, out_groups: torch.Tensor) -> None:
        super().__init__(in_channels, out_channels, (1, kernel_size // 2 + 1))
        if self.weight.is_meta:
            mask = _shape_only(self.weight)
        else:
            mask = torch.ones_like(self.weight)
            mask[:, :, 0, -1] = centre_tap_mask(out_groups, in_groups, mask_type)
        self.register_buffer("mask", mask, persistent=False)
        self.left = kernel_size // 2
        self.in_groups, self.out_groups = in_groups, out_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (self.left, 0)), self.weight * self.mask, self.bias)

    def conv_geometry(self) -> ConvGeometry:
        return ConvGeometry(self.kernel_size, (self.left, 0, 0, 0), taps=pair_taps(self.mask, self.out_groups, self.in_groups),
                            weight=lambda: (self.weight * self.mask, self.bias), out_groups=self.out_groups)
