"""WaveNet (van den Oord et al. 2016): causal dilated convolutions with gated units over audio codes.

The input at position t is sample t-1 (a begin-of-clip code at t = 0), fed through a causal
convolution of width ``kernel_size``; then per dilation a gated unit ``tanh(W_f * x) . sigmoid(W_g * x)``
(plus a per-layer speaker embedding, the paper's global conditioning), a 1x1 residual and a 1x1 skip
output; the summed skips go through ReLU -> 1x1 -> ReLU -> 1x1 to a 256-way softmax over mu-law
codes, or to a discretized mixture of logistics over 16-bit linear codes (Salimans et al. 2017).

Generation follows Fast WaveNet (Paine et al. 2016): each layer keeps its last ``(k-1) * d + 1``
inputs in a preallocated ring, so a new sample costs one matrix-vector step per layer. At batch 1 the
time goes to per-op dispatch, not FLOPs, so the cached step is written to use few ops: per layer one
``addmm`` over a contiguous tap slot (the ring stores a slot's taps side by side and the weight is
pre-rotated to match which tap is newest), one ``tanh`` over both gate halves (the sigmoid half is
pre-scaled: sigmoid(g) = (1 + tanh(g/2)) / 2), one ``addcmul`` and one ``addmm`` for the residual
with its bias folded in as an extra row; all skips are one ``mm`` at the end.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import AudioCache, AudioModel, AudioSpace
from ..distributions import Categorical, DiscretizedLogisticMixture, categorical_draw, logistic_mixture_draw
from ..errors import ConfigError
from ..registry import register_family
from ..validation import check_choice, check_labels, check_positive

__all__ = ["FSDD_SPEAKERS", "Queues", "VCTK_SPEAKERS", "WaveNet", "WaveNetConfig", "receptive_field"]

OUTPUTS = ("mu-law", "logistic-mixture")
LOG_SCALE_MIN = math.log(1e-14)  # r9y9/wavenet_vocoder's floor for 16-bit targets

# ibab/tensorflow-wavenet's wavenet_params.json: dilations 1..512 five times, 32/32/512 channels, 16 kHz.
VCTK_DILATIONS = [2**i for i in range(10)] * 5
VCTK_SPEAKERS = [f"p{i}" for i in (
    225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 236, 237, 238, 239, 240, 241, 243, 244, 245, 246, 247, 248, 249, 250,
    251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274,
    275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286, 287, 288, 292, 293, 294, 295, 297, 298, 299, 300, 301, 302,
    303, 304, 305, 306, 307, 308, 310, 311, 312, 313, 314, 316, 317, 318, 323, 326, 329, 330, 333, 334, 335, 336, 339, 340,
    341, 343, 345, 347, 351, 360, 361, 362, 363, 364, 374, 376)] + ["s5"]  # VCTK 0.92 mic1 minus p315 (no transcripts): 109
FSDD_SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


@dataclass
class WaveNetConfig:
    sample_rate: int = 16000
    dilations: list[int] = field(default_factory=lambda: list(VCTK_DILATIONS))
    kernel_size: int = 2
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 512
    output: str = "mu-law"  # "mu-law": softmax over `levels` mu-law codes; "logistic-mixture": over `levels` linear codes
    levels: int = 256  # 256 mu-law codes; 65536 (16-bit) for "logistic-mixture"
    mixtures: int = 10  # logistic components ("logistic-mixture" only)
    labels: list[str] | None = None  # speaker names (global conditioning); None: unconditional
    train_samples: int = 4000  # scored samples per training window (plus receptive_field - 1 of left context)

    def __post_init__(self) -> None:
        check_choice(self, "output", OUTPUTS)
        check_positive(self, "sample_rate", "residual_channels", "dilation_channels", "skip_channels", "mixtures", "train_samples")
        check_positive(self, "kernel_size", maximum=64)
        if self.kernel_size < 2:
            raise ConfigError(f"WaveNetConfig.kernel_size must be >= 2 (a width-1 filter sees no past), got {self.kernel_size}")
        if not isinstance(self.dilations, (list, tuple)) or not self.dilations or not all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 16 for d in self.dilations):
            raise ConfigError(f"WaveNetConfig.dilations must be a non-empty list of ints in 1..65536, got {self.dilations!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 2 <= self.levels <= 65536:
            raise ConfigError(f"WaveNetConfig.levels must be an int in 2..65536, got {self.levels!r}")
        check_labels(self)


def receptive_field(config: WaveNetConfig | dict[str, Any]) -> int:
    """Past samples a prediction can depend on: (k - 1) * (sum of dilations + 1 for the input layer) + 1."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    return (get("kernel_size", 2) - 1) * (sum(get("dilations", VCTK_DILATIONS)) + 1) + 1


@register_family(
    "wavenet",
    config=WaveNetConfig,
    presets={
        "tiny": dict(sample_rate=8000, dilations=[1, 2, 4, 1, 2], residual_channels=6, dilation_channels=5, skip_channels=7,
                     levels=16, train_samples=32),
        "vctk": dict(sample_rate=16000, dilations=VCTK_DILATIONS, residual_channels=32, dilation_channels=32, skip_channels=512,
                     labels=VCTK_SPEAKERS),
        # DESIGN section 7's speed reference (r9y9/wavenet_vocoder size): 20 layers, 2 stacks, 64 channels, kernel 2.
        "r9y9-20": dict(sample_rate=8000, dilations=[2**i for i in range(10)] * 2, residual_channels=64, dilation_channels=64,
                        skip_channels=64),
    },
)
class WaveNet(AudioModel):
    def __init__(self, config: WaveNetConfig) -> None:
        c = config
        if c.output == "mu-law":
            space, distribution = AudioSpace(c.sample_rate, c.levels, "mu-law"), Categorical(c.levels)
        else:
            space, distribution = AudioSpace(c.sample_rate, c.levels, "linear"), DiscretizedLogisticMixture(c.levels, c.mixtures, 1, LOG_SCALE_MIN)
        super().__init__(config, space=space, distribution=distribution, labels=c.labels, receptive_field=receptive_field(c),
                         train_samples=c.train_samples)
        k, C, D, S = c.kernel_size, c.residual_channels, c.dilation_channels, c.skip_channels
        if c.output == "mu-law":
            self.embed = nn.Embedding(c.levels + 1, k * C)  # one-hot causal input convolution, + begin-of-clip code
            nn.init.normal_(self.embed.weight, 0.0, 0.5)
        else:
            self.input_value = nn.Parameter(torch.randn(k, C) * 0.5)  # scalar input: the sample's value...
            self.input_bos = nn.Parameter(torch.randn(k, C) * 0.5)  # ...and a begin-of-clip indicator
        self.out_params = distribution.num_params
        self.input_bias = nn.Parameter(torch.zeros(C))
        self.convs = nn.ModuleList(nn.Conv1d(C, 2 * D, k, dilation=d) for d in c.dilations)
        last = len(c.dilations) - 1
        self.outs = nn.ModuleList(nn.Conv1d(D, (0 if i == last else C) + S, 1) for i in range(len(c.dilations)))
        self.speaker = nn.Embedding(len(c.labels), len(c.dilations) * 2 * D) if c.labels else None
        if self.speaker is not None:
            nn.init.normal_(self.speaker.weight, 0.0, 0.1)
        self.head1 = nn.Conv1d(S, S, 1)
        self.head2 = nn.Conv1d(S, self.out_params, 1)

    @staticmethod
    def info_from_config(config: dict[str, Any]) -> dict[str, Any]:
        """What ``zoo.model_info`` adds for this family: the receptive field, in samples and milliseconds."""
        rf = receptive_field(config)
        return {"receptive_field": rf, "receptive_field_ms": round(1000 * rf / config.get("sample_rate", 16000), 1)}

    # ------------------------------------------------------------------ network
    def _input_rows(self, inputs: torch.Tensor) -> torch.Tensor:
        """Each input code's contribution to each tap of the input convolution: ``[..., k, C]``."""
        k, C = self.config.kernel_size, self.config.residual_channels
        if self.config.output == "mu-law":
            return self.embed(inputs).unflatten(-1, (k, C))
        bos = inputs == self.bos
        value = self.space.decode(inputs.clamp(max=self.bos - 1)).masked_fill(bos, 0.0).to(self.input_value.dtype)
        return value[..., None, None] * self.input_value + bos[..., None, None].to(value.dtype) * self.input_bos

    def forward(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Output parameters ``[N, P, W]``. Written to avoid copies: they, not the convolutions, dominated training time."""
        c = self.config
        k, C, D, L = c.kernel_size, c.residual_channels, c.dilation_channels, len(c.dilations)
        n, width = inputs.shape
        rows = self._input_rows(inputs)  # [N, W, k, C]
        x = rows[:, :, k - 1] + self.input_bias
        for j in range(k - 1):  # tap j sees the input k-1-j steps back (zero before the clip start)
            shift = k - 1 - j
            x = x + F.pad(rows[:, : width - shift, j], (0, 0, shift, 0))
        x = x.transpose(1, 2)  # [N, C, W]
        gates_bias = None if cond is None or self.speaker is None else self.speaker(cond).view(n, L, 2 * D, 1)
        skip = None
        for i, (conv, out) in enumerate(zip(self.convs, self.outs, strict=True)):
            d = conv.dilation[0]
            # Causal: with (k-1)d zeros on both sides, output t reads inputs t-(k-1)d .. t; keep the first W.
            h = F.conv1d(x, conv.weight, conv.bias, padding=(k - 1) * d, dilation=d)[..., :width]
            if gates_bias is not None:
                h = h + gates_bias[:, i]
            f, g = h.chunk(2, 1)
            o = out(torch.tanh(f) * torch.sigmoid(g))
            if i < L - 1:
                r, o = o.split([C, c.skip_channels], 1)
                x = x + r
            skip = o if skip is None else skip + o
        return self.head2(F.relu(self.head1(F.relu(skip))))

    # ------------------------------------------------------------------ fast generation
    def incremental_cache(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None) -> Queues:
        return Queues(self, codes, cond)


_Tensors = list[torch.Tensor]


def _draw(params: torch.Tensor, uniforms: torch.Tensor, temperature: float, levels: int, mixtures: int) -> torch.Tensor:
    """Codes ``[N]`` from output parameters by inverse CDF: the softmax over codes (``mixtures`` 0) or the logistic mixture."""
    if mixtures == 0:
        return categorical_draw(params, uniforms, temperature, 0, 1.0)
    return logistic_mixture_draw(params, uniforms, temperature, levels, mixtures, 1, LOG_SCALE_MIN)[:, 0]


def _loop(codes: torch.Tensor, t0: int, stop: int, first: int, uniforms: torch.Tensor, temperature: float, mixtures: int,
          levels: int, k: int, dilations: list[int], inputs: _Tensors, history: _Tensors, read: list[_Tensors],
          write: list[list[_Tensors]], weights: list[_Tensors], bias: _Tensors, residual: _Tensors, gate: _Tensors,
          gate_aug: _Tensors, work: _Tensors) -> _Tensors:
    """Fast WaveNet from time ``t0`` to ``stop``: feed each input, and from ``first`` on draw the sample into ``codes``.

    Plain tensor ops on preallocated buffers (``out=``), no modules: TorchScript runs it without
    Python's per-op overhead. ``inputs`` = (embedding table | value and begin weights, input bias);
    ``work`` = (gates, skip weights, head weights and biases, scratch buffers, params).
    """
    table, value_w, bos_w, input_bias = inputs[0], inputs[1], inputs[2], inputs[3]
    gates, skip_w, h1w, h1b, h2w, h2b = work[0], work[1], work[2], work[3], work[4], work[5]
    pre, act, act_f, act_g, skip, hidden, params = work[6], work[7], work[8], work[9], work[10], work[11], work[12]
    flat = gates.view(gates.shape[0], -1)
    last = len(dilations) - 1
    for t in range(t0, stop):
        code = torch.full_like(codes[:, 0], levels) if t == 0 else codes[:, t - 1]
        if mixtures == 0:
            rows = table.index_select(0, code)
        else:
            bos = code == levels
            value = (code.clamp(max=levels - 1).to(value_w.dtype) * (2.0 / (levels - 1)) - 1.0).masked_fill(bos, 0.0)
            rows = value[:, None, None] * value_w + bos.to(value_w.dtype)[:, None, None] * bos_w
        d = dilations[0]
        x = write[0][t % d][(t // d) % k]
        torch.add(rows[:, k - 1], input_bias, out=x)
        for j in range(k - 1):  # history[j] holds the input k-1-j steps back
            x.add_(history[j][:, j])
        if k > 1:
            history = history[1:] + [rows]
        for i in range(last + 1):
            d = dilations[i]
            torch.addmm(bias[i], read[i][t % d], weights[i][(t // d) % k], out=pre)
            torch.tanh(pre, out=act)
            torch.addcmul(act_f, act_f, act_g, out=gate[i])  # 2 * tanh(f) * sigmoid(g)
            if i < last:
                d = dilations[i + 1]
                nxt = write[i + 1][t % d][(t // d) % k]
                torch.addmm(x, gate_aug[i], residual[i], out=nxt)
                x = nxt
        if t >= first:
            torch.mm(flat, skip_w, out=skip)
            torch.addmm(h1b, skip.relu_(), h1w, out=hidden)
            torch.addmm(h2b, hidden.relu_(), h2w, out=params)
            if uniforms.shape[0] > 0:
                codes[:, t] = _draw(params, uniforms[t - first], temperature, levels, mixtures)
    return history


_COMPILED: dict[str, Any] = {}


def _compiled(name: str) -> Any:
    """``_loop`` under TorchScript, compiled on first use (0.1 s, kept off ``import zoo``).

    TorchScript runs the loop without Python's per-op overhead (~2x at batch 1); where it is
    unavailable the plain Python functions give the same results, only slower.
    """
    if name not in _COMPILED:
        function = {"loop": _loop}[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated": torch.compile is no substitute here
                _COMPILED[name] = torch.jit.script(function)
        except Exception:  # pragma: no cover - e.g. no source access in a frozen application
            _COMPILED[name] = function
    return _COMPILED[name]


class Queues(AudioCache):
    """Fast WaveNet state: per layer a ring of its past inputs, and the weights as plain matrices.

    Layer l with dilation d keeps ``d`` slots of ``k`` taps each, ``[d, N, k*C]``: the input at time t
    goes to slot ``t % d``, tap position ``(t // d) % k``, so slot ``t % d`` then holds exactly the k
    inputs the dilated filter reads at t, side by side. Which position is newest rotates with t, so
    each layer has k copies of its filter with the tap blocks rotated to match.
    """

    @torch.no_grad()
    def __init__(self, model: WaveNet, codes: torch.Tensor, cond: torch.Tensor | None) -> None:
        super().__init__(model, codes, cond)
        n = codes.shape[0]
        c = model.config
        k, C, D, S, L = c.kernel_size, c.residual_channels, c.dilation_channels, c.skip_channels, len(c.dilations)
        dev, dt = model.device, model.dtype
        self.k, self.dilations, self.t = k, list(c.dilations), 0
        self.history = [torch.zeros(n, k, C, device=dev, dtype=dt) for _ in range(k - 1)]  # input rows, oldest first
        self.read, self.write, self.weights, self.bias, self.residual = [], [], [], [], []
        half = torch.ones(2 * D, 1, device=dev, dtype=dt)
        half[D:] = 0.5  # sigmoid(g) = (1 + tanh(g / 2)) / 2
        speaker = None if cond is None or model.speaker is None else model.speaker(cond).view(n, L, 2 * D)
        for i, (conv, out) in enumerate(zip(model.convs, model.outs, strict=True)):
            d = conv.dilation[0]
            ring = torch.zeros(d, n, k * C, device=dev, dtype=dt)
            self.read.append([ring[s] for s in range(d)])
            self.write.append([[ring[s][:, q * C : (q + 1) * C] for q in range(k)] for s in range(d)])
            w = conv.weight * half[:, :, None]  # [2D, C, k]
            self.weights.append([torch.cat([w[:, :, k - 1 - (p - q) % k].t() for q in range(k)]).contiguous() for p in range(k)])
            b = conv.bias + (0 if speaker is None else speaker[:, i])
            self.bias.append((b * half[:, 0]).expand(n, 2 * D).contiguous())
            if i < L - 1:  # residual 1x1 (0.5: the gate below is computed doubled), bias as an extra row
                self.residual.append(torch.cat([0.5 * out.weight[:C, :, 0].t(), out.bias[None, :C]]).contiguous())
        self.gates = torch.ones(n, L, D + 1, device=dev, dtype=dt)  # column D stays 1: the bias row's input
        self.gate = [self.gates[:, i, :D] for i in range(L)]
        self.gate_aug = [self.gates[:, i] for i in range(L)]
        self.skip_w = torch.cat([torch.cat([0.5 * o.weight[-S:, :, 0].t(), o.bias[None, -S:]]) for o in model.outs]).contiguous()
        self.h1 = (model.head1.weight[:, :, 0].t().contiguous(), model.head1.bias.expand(n, -1).contiguous())
        self.h2 = (model.head2.weight[:, :, 0].t().contiguous(), model.head2.bias.expand(n, -1).contiguous())
        self.pre = torch.empty(n, 2 * D, device=dev, dtype=dt)
        self.act = torch.empty(n, 2 * D, device=dev, dtype=dt)
        self.act_f, self.act_g = self.act[:, :D], self.act[:, D:]
        self.skip = torch.empty(n, S, device=dev, dtype=dt)
        self.hidden = torch.empty(n, S, device=dev, dtype=dt)
        self.params = torch.empty(n, model.out_params, device=dev, dtype=dt)
        self.mixtures = c.mixtures if c.output == "logistic-mixture" else 0
        self.levels = c.levels
        empty = torch.zeros(0, device=dev, dtype=dt)
        if self.mixtures:
            self.inputs = [empty, model.input_value.detach(), model.input_bos.detach(), model.input_bias.detach()]
        else:
            self.inputs = [model.embed.weight.detach().view(c.levels + 1, k, C), empty, empty, model.input_bias.detach()]
        self.work = [self.gates, self.skip_w, *self.h1, *self.h2, self.pre, self.act, self.act_f, self.act_g, self.skip,
                     self.hidden, self.params]

    def params_at(self, t: int) -> torch.Tensor:
        self.run(t + 1, t, None, 1.0)
        return self.params

    def generate(self, distribution: Any, first: int, stop: int, uniforms: torch.Tensor, temperature: float, bar: Any,
                 options: dict[str, Any]) -> None:
        """The whole loop in TorchScript (draws included), in chunks only to move the progress bar."""
        for start in range(first, stop, 512):
            end = min(stop, start + 512)
            self.run(end, first, uniforms, temperature)
            bar.update(end - start)

    def run(self, stop: int, first: int, uniforms: torch.Tensor | None, temperature: float) -> None:
        """Feed inputs up to time ``stop``; from ``first`` on compute ``self.params`` and, given uniforms, draw into the codes."""
        codes = self.codes
        if uniforms is None:
            uniforms = codes.new_zeros(0, codes.shape[0], 2, dtype=torch.float32)
        loop = _compiled("loop")
        self.history = loop(codes, self.t, stop, first, uniforms, float(temperature), self.mixtures, self.levels, self.k,
                            self.dilations, self.inputs, self.history, self.read, self.write, self.weights, self.bias,
                            self.residual, self.gate, self.gate_aug, self.work)
        self.t = stop
