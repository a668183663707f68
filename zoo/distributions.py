"""Output distributions: what a network's parameters mean, scored exactly and drawn from uniforms.

Every family ends in one of these. ``log_prob(params, x)`` takes the parameters with their
parameter axis at dim 1 (a convolution's output layout, ``[N, P, *S]``) and integer values
``[N, C, *S]``, and returns ``log p`` per channel in float32 nats. ``sample(params, u, temperature)``
draws the values of one position from its parameters ``[N, P]`` by inverse CDF with the uniforms
``u [N, uniforms]``: a draw is a function of the uniforms, so every generation path that feeds a
position the same uniforms draws the same value, which is what makes "fast equals naive" testable.

``joint`` distributions (the coupled logistic mixture) draw every channel of a position at once;
the others draw one channel at a time (``channel_params`` picks that channel's block), so the
channel loop lives in the image base class, not in each family.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["Bernoulli", "Categorical", "DiscretizedLogisticMixture", "Distribution", "categorical_draw", "logistic_mixture_draw"]


class Distribution(ABC):
    """A discrete distribution over ``channels`` values per position, with ``num_params`` parameters per position."""

    channels: int = 1
    joint: bool = False  # True: one draw gives all channels of a position
    uniforms: int = 1  # uniforms one draw consumes

    @property
    @abstractmethod
    def num_params(self) -> int:
        """Parameters per position (all channels): the network's output width."""

    @abstractmethod
    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_c | x_<c, params)`` per channel, ``[N, C, *S]`` float32, for ``params [N, P, *S]`` and integer ``x [N, C, *S]``."""

    @abstractmethod
    def sample(self, params: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Values of one draw, ``[N]`` (or ``[N, C]`` when ``joint``), from ``params [N, p]`` and uniforms ``u [N, uniforms]``."""

    @property
    def draws_per_position(self) -> int:
        return 1 if self.joint else self.channels

    def channel_params(self, params: torch.Tensor, channel: int) -> torch.Tensor:
        """The parameters ``[N, p]`` of channel ``channel``'s draw out of one position's ``[N, P]``."""
        if self.joint:
            return params
        width = self.num_params // self.channels
        return params[:, channel * width : (channel + 1) * width]


class Bernoulli(Distribution):
    """Binary values from one logit per channel; ``temperature`` divides the logit."""

    def __init__(self, channels: int = 1) -> None:
        self.channels = channels

    @property
    def num_params(self) -> int:
        return self.channels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(params.float(), x.float(), reduction="none")

    def sample(self, params: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return (u[:, 0] < torch.sigmoid(params[:, 0].float() / temperature)).long()


def categorical_draw(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Indices ``[N]`` drawn from ``logits [N, K]`` by inverse CDF with ``u [N, >=1]`` after temperature, top-k and top-p.

    Top-p keeps the smallest set of most likely values whose mass reaches ``top_p``. TorchScript-compatible.
    """
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        probs = probs.masked_fill(drop.scatter(-1, order, drop), 0.0)
    cdf = probs.cumsum(-1)
    return torch.searchsorted(cdf, u[:, :1] * cdf[:, -1:]).squeeze(1).clamp(max=logits.shape[-1] - 1)


class Categorical(Distribution):
    """A softmax over ``levels`` values per channel (256-way pixels, mu-law codes, characters, tokens)."""

    def __init__(self, levels: int, channels: int = 1) -> None:
        self.levels, self.channels = levels, channels

    @property
    def num_params(self) -> int:
        return self.levels * self.channels

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = params.unsqueeze(1) if self.channels == 1 else params.unflatten(1, (self.channels, self.levels))
        return logits.float().log_softmax(2).gather(2, x.long().unsqueeze(2)).squeeze(2)

    def sample(self, params: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> torch.Tensor:
        return categorical_draw(params, u, temperature, top_k or 0, 1.0 if top_p is None else top_p)


def logistic_mixture_draw(params: torch.Tensor, u: torch.Tensor, temperature: float, levels: int, mixtures: int, channels: int,
                          log_scale_min: float) -> torch.Tensor:
    """Codes ``[N, C]`` from one position's mixture parameters ``[N, P]`` and uniforms ``[N, 1 + C]``. TorchScript-compatible.

    A continuous logistic draw, clamped to [-1, 1] and rounded to the grid, falls in each bin with
    that bin's probability under the discretized likelihood; coupled channels use the drawn (rounded)
    earlier channels, as the likelihood does. ``temperature`` divides the mixture logits and
    multiplies the logistic scales.
    """
    n = params.shape[0]
    p = params.float()
    cdf = torch.softmax(p[:, :mixtures] / temperature, -1).cumsum(-1)
    k = torch.searchsorted(cdf, u[:, :1] * cdf[:, -1:]).clamp(max=mixtures - 1)  # [N, 1]
    rest = p[:, mixtures:].reshape(n, channels, -1, mixtures)
    chosen = rest.gather(3, k[:, None, None, :].expand(n, channels, rest.shape[2], 1))[..., 0]  # [N, C, 2 or 3]
    noise_u = u[:, 1 : 1 + channels].clamp(1e-5, 1.0 - 1e-5)
    noise = torch.exp(chosen[:, :, 1].clamp(min=log_scale_min)) * temperature * (torch.log(noise_u) - torch.log1p(-noise_u))
    half = (levels - 1) / 2.0
    codes = torch.empty(n, channels, dtype=torch.long, device=params.device)
    values: list[torch.Tensor] = []
    for c in range(channels):
        mean = chosen[:, c, 0]
        if c == 1:
            mean = mean + torch.tanh(chosen[:, 0, 2]) * values[0]
        elif c == 2:
            mean = mean + torch.tanh(chosen[:, 1, 2]) * values[0] + torch.tanh(chosen[:, 2, 2]) * values[1]
        code = torch.round((torch.clamp(mean + noise[:, c], -1.0, 1.0) + 1.0) * half)
        codes[:, c] = code.long()
        values.append(code / half - 1.0)
    return codes


class DiscretizedLogisticMixture(Distribution):
    """The discretized mixture of logistics of PixelCNN++ (Salimans et al. 2017), also WaveNet's 16-bit output.

    ``levels`` bins evenly over [-1, 1]; the lowest and highest bins take all mass beyond them.
    Parameters per position: ``mixtures`` logits, then per channel and component a mean, a
    log-scale (clamped below at ``log_scale_min``) and, for RGB (``channels == 3``), the coupling
    coefficients that make G depend linearly on R and B on R and G. Within a bin whose mass is
    below 1e-5 the density at the bin centre is used (openai/pixel-cnn's rule). The joint
    likelihood of a pixel splits exactly into per-channel conditionals through cumulative
    log-sum-exps over the shared component, so ``log_prob`` returns ``log p(x_c | x_<c)``.
    """

    joint = True

    def __init__(self, levels: int, mixtures: int, channels: int = 1, log_scale_min: float = -7.0) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"a logistic mixture models 1 (grey, audio) or 3 (RGB) channels, got {channels}")
        if mixtures < 1 or levels < 2:
            raise ConfigError(f"a logistic mixture needs mixtures >= 1 and levels >= 2, got {mixtures} and {levels}")
        self.levels, self.mixtures, self.channels, self.log_scale_min = levels, mixtures, channels, log_scale_min
        self.uniforms = 1 + channels

    @property
    def num_params(self) -> int:
        return self.mixtures * (1 + self.channels * (3 if self.channels == 3 else 2))

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m, c, half = self.mixtures, self.channels, (self.levels - 1) / 2
        params = params.float()
        logit_probs = params[:, :m]
        rest = params[:, m:].unflatten(1, (c, -1, m))  # [N, C, 2 or 3, M, *S]
        means, log_scales = rest[:, :, 0], rest[:, :, 1].clamp(min=self.log_scale_min)
        codes = x.long().unsqueeze(2)  # [N, C, 1, *S]
        xs = codes.float() / half - 1.0
        if c == 3:
            coeffs = torch.tanh(rest[:, :, 2])
            means = torch.stack([
                means[:, 0],
                means[:, 1] + coeffs[:, 0] * xs[:, 0],
                means[:, 2] + coeffs[:, 1] * xs[:, 0] + coeffs[:, 2] * xs[:, 1],
            ], dim=1)
        centered = xs - means
        inv_stdv = torch.exp(-log_scales)
        plus_in = inv_stdv * (centered + 1.0 / (2 * half))
        min_in = inv_stdv * (centered - 1.0 / (2 * half))
        log_cdf_plus = plus_in - F.softplus(plus_in)  # the lowest bin takes all mass below
        log_one_minus_cdf_min = -F.softplus(min_in)  # the highest bin takes all mass above
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        mid_in = inv_stdv * centered
        log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in) - math.log(half)
        interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        per_component = torch.where(codes == 0, log_cdf_plus, torch.where(codes == self.levels - 1, log_one_minus_cdf_min, interior))
        # log p(x_0..x_c, k) for every prefix of channels, then p(x_c | x_<c) = p(x_<=c) / p(x_<c).
        joint = torch.logsumexp(per_component.cumsum(1) + F.log_softmax(logit_probs, dim=1).unsqueeze(1), dim=2)
        return torch.cat([joint[:, :1], joint[:, 1:] - joint[:, :-1]], dim=1)

    def sample(self, params: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return logistic_mixture_draw(params, u, temperature, self.levels, self.mixtures, self.channels, self.log_scale_min)
