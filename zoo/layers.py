"""Building blocks shared by the image families: causal (masked) convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(n: int, groups: int) -> torch.Tensor:
    """Colour group (0 = R, 1 = G, 2 = B) of each of ``n`` channels: ``groups`` contiguous, near-equal blocks.

    Any fixed assignment keeps the network causal; near-equal blocks give each colour the same capacity.
    """
    if n < groups:
        raise ValueError(f"{n} channels cannot be split into {groups} colour groups")
    return torch.arange(n) * groups // n


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


class MaskedConv2d(nn.Conv2d):
    """A same-size convolution whose weights are multiplied by a fixed :func:`causal_mask`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", causal_mask(out_channels, in_channels, kernel_size, mask_type, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)
