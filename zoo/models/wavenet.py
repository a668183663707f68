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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..audio import AudioModel
from ..errors import ConfigError
from ..registry import register_family

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
    family = "wavenet"

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__(config)
        c = config
        if c.output not in OUTPUTS:
            raise ConfigError(f"output must be one of {OUTPUTS}, got {c.output!r}")
        if c.kernel_size < 2:
            raise ConfigError(f"kernel_size must be >= 2 (a width-1 filter sees no past), got {c.kernel_size}")
        if not c.dilations or any(not isinstance(d, int) or d < 1 for d in c.dilations):
            raise ConfigError(f"dilations must be a non-empty list of positive ints, got {c.dilations!r}")
        if c.levels < 2 or (c.output == "mu-law" and c.levels > 65536):
            raise ConfigError(f"levels must be in 2..65536, got {c.levels}")
        if c.labels is not None and len(set(c.labels)) != len(c.labels):
            raise ConfigError("speaker labels must be distinct")
        k, C, D, S = c.kernel_size, c.residual_channels, c.dilation_channels, c.skip_channels
        if c.output == "mu-law":
            self.embed = nn.Embedding(c.levels + 1, k * C)  # one-hot causal input convolution, + begin-of-clip code
            nn.init.normal_(self.embed.weight, 0.0, 0.5)
            self.out_params = c.levels
        else:
            self.input_value = nn.Parameter(torch.randn(k, C) * 0.5)  # scalar input: the sample's value...
            self.input_bos = nn.Parameter(torch.randn(k, C) * 0.5)  # ...and a begin-of-clip indicator
            self.out_params = 3 * c.mixtures
        self.input_bias = nn.Parameter(torch.zeros(C))
        self.convs = nn.ModuleList(nn.Conv1d(C, 2 * D, k, dilation=d) for d in c.dilations)
        last = len(c.dilations) - 1
        self.outs = nn.ModuleList(nn.Conv1d(D, (0 if i == last else C) + S, 1) for i in range(len(c.dilations)))
        self.speaker = nn.Embedding(len(c.labels), len(c.dilations) * 2 * D) if c.labels else None
        if self.speaker is not None:
            nn.init.normal_(self.speaker.weight, 0.0, 0.1)
        self.head1 = nn.Conv1d(S, S, 1)
        self.head2 = nn.Conv1d(S, self.out_params, 1)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.config)

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
        return self._channels_first(inputs, cond).transpose(1, 2)

    def _channels_first(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
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

    def per_step_log_prob(self, inputs: torch.Tensor, targets: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        scored = targets >= 0
        safe = targets.clamp(min=0)
        if self.config.output == "mu-law":
            lp = self._channels_first(inputs, cond).float().log_softmax(1).gather(1, safe[:, None])[:, 0]
        else:
            lp = self._mixture_log_prob(self(inputs, cond).float(), safe)
        return lp.masked_fill(~scored, 0.0)

    def _mixture_log_prob(self, params: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Discretized logistic mixture over ``levels`` bins of [-1, 1] (PixelCNN++'s, as in r9y9/wavenet_vocoder)."""
        K, levels = self.config.mixtures, self.config.levels
        logits, means, log_scales = params[..., :K], params[..., K : 2 * K], params[..., 2 * K :].clamp(min=LOG_SCALE_MIN)
        x = self.space.decode(codes)[..., None]
        centered, inv_s, half = x - means, torch.exp(-log_scales), 1.0 / (levels - 1)
        plus, minus = inv_s * (centered + half), inv_s * (centered - half)
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin takes all mass below
        log_one_minus_cdf_min = -F.softplus(minus)  # the highest bin takes all mass above
        delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        mid = inv_s * centered
        log_pdf_mid = mid - log_scales - 2 * F.softplus(mid) - math.log((levels - 1) / 2)
        inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
        c = codes[..., None]
        log_probs = torch.where(c == 0, log_cdf_plus, torch.where(c == levels - 1, log_one_minus_cdf_min, inner))
        return torch.logsumexp(log_probs + logits.log_softmax(-1), dim=-1)

    def draw(self, params: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
        mixtures = self.config.mixtures if self.config.output == "logistic-mixture" else 0
        return _compiled("draw")(params, uniforms, temperature, self.config.levels, mixtures)

    # ------------------------------------------------------------------ fast generation
    def generation_state(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None) -> _Queues:
        state = _Queues(self, codes.shape[0], cond)
        with _one_thread():
            state.run(codes, first, first, None, 1.0)  # feed the known prefix
        return state

    def next_params(self, codes: torch.Tensor, t: int, cond: torch.Tensor | None, state: Any) -> torch.Tensor:
        if state is None:
            return super().next_params(codes, t, cond, None)
        state.run(codes, t + 1, t, None, 1.0)
        return state.params

    def sample_codes(self, codes: torch.Tensor, first: int, cond: torch.Tensor | None, temperature: float,
                     uniforms: torch.Tensor, state: Any, bar: Any) -> None:
        if state is None:
            return super().sample_codes(codes, first, cond, temperature, uniforms, state, bar)
        with _one_thread():
            for start in range(first, codes.shape[1], 512):  # chunks only to move the progress bar
                stop = min(codes.shape[1], start + 512)
                state.run(codes, stop, first, uniforms, temperature)
                bar.update(stop - start)
        return None


@contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread for the cached loop: its ops are matrix-vector sized, and a second thread
    only adds OpenMP hand-offs (10x slower per step measured when the other core is busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_Tensors = list[torch.Tensor]


def _draw(params: torch.Tensor, uniforms: torch.Tensor, temperature: float, levels: int, mixtures: int) -> torch.Tensor:
    """Codes ``[N]`` from output parameters by inverse CDF: softmax over codes (``mixtures`` 0) or a logistic mixture."""
    p = params.float()
    if mixtures == 0:
        cdf = torch.softmax(p / temperature, -1).cumsum(-1)
        return torch.searchsorted(cdf, uniforms[:, :1] * cdf[:, -1:]).squeeze(1).clamp(max=levels - 1)
    cdf = torch.softmax(p[:, :mixtures] / temperature, -1).cumsum(-1)
    k = torch.searchsorted(cdf, uniforms[:, :1] * cdf[:, -1:]).clamp(max=mixtures - 1)
    mean = p[:, mixtures : 2 * mixtures].gather(1, k).squeeze(1)
    log_scale = p[:, 2 * mixtures :].gather(1, k).squeeze(1).clamp(min=-32.23619130191664)
    u = uniforms[:, 1].clamp(1e-5, 1 - 1e-5)
    value = (mean + torch.exp(log_scale) * temperature * (torch.log(u) - torch.log1p(-u))).clamp(-1.0, 1.0)
    return ((value + 1) * ((levels - 1) / 2)).round().long()


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
    """``_draw`` or ``_loop`` under TorchScript, compiled on first use (0.1 s, kept off ``import zoo``).

    TorchScript runs the loop without Python's per-op overhead (~2x at batch 1); where it is
    unavailable the plain Python functions give the same results, only slower.
    """
    if name not in _COMPILED:
        function = {"draw": _draw, "loop": _loop}[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated": torch.compile is no substitute here
                _COMPILED[name] = torch.jit.script(function)
        except Exception:  # pragma: no cover - e.g. no source access in a frozen application
            _COMPILED[name] = function
    return _COMPILED[name]


class _Queues:
    """Fast WaveNet state: per layer a ring of its past inputs, and the weights as plain matrices.

    Layer l with dilation d keeps ``d`` slots of ``k`` taps each, ``[d, N, k*C]``: the input at time t
    goes to slot ``t % d``, tap position ``(t // d) % k``, so slot ``t % d`` then holds exactly the k
    inputs the dilated filter reads at t, side by side. Which position is newest rotates with t, so
    each layer has k copies of its filter with the tap blocks rotated to match.
    """

    @torch.no_grad()
    def __init__(self, model: WaveNet, n: int, cond: torch.Tensor | None) -> None:
        c = model.config
        k, C, D, S, L = c.kernel_size, c.residual_channels, c.dilation_channels, c.skip_channels, len(c.dilations)
        dev, dt = model.device, model.dtype
        self.model, self.k, self.dilations, self.t = model, k, list(c.dilations), 0
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

    def run(self, codes: torch.Tensor, stop: int, first: int, uniforms: torch.Tensor | None, temperature: float) -> None:
        """Feed inputs up to time ``stop``; from ``first`` on compute ``self.params`` and, given uniforms, draw into ``codes``."""
        if uniforms is None:
            uniforms = codes.new_zeros(0, codes.shape[0], 2, dtype=torch.float32)
        loop = _compiled("loop")
        self.history = loop(codes, self.t, stop, first, uniforms, float(temperature), self.mixtures, self.levels, self.k,
                            self.dilations, self.inputs, self.history, self.read, self.write, self.weights, self.bias,
                            self.residual, self.gate, self.gate_aug, self.work)
        self.t = stop
