"""Convolutional image networks as op graphs, and the one exact incremental sampler built from them.

A family that writes its network as a list of :class:`Op` over named activations runs the same
list for ``forward`` (:func:`run_graph`) and for fast sampling (:class:`DependencyCache`, Fast
PixelCNN++ after Ramachandran et al. 2017). :func:`dependency_maps` runs the graph's geometry
with max in place of sums: for every activation position it finds the raster index of the last
input pixel it depends on. The sampler computes each position once, right after that pixel is
drawn, on a small window of its inputs, so it equals a full forward per pixel for any stack of
shifted, masked, strided or transposed convolutions and pointwise ops.

Convolution modules expose their geometry through ``conv_geometry()`` (:class:`ConvGeometry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from .image import ImageCache, ImageModel

__all__ = ["INPUT", "OUTPUT", "ConvGeometry", "DependencyCache", "Op", "colour_groups", "dependency_maps", "geometries", "run_graph"]

INPUT, OUTPUT = "input", "output"


@dataclass(frozen=True)
class ConvGeometry:
    """What a convolution reads: zero padding ``(left, right, top, bottom)``, the kernel, the stride, which taps are live
    (``taps [kh, kw]``, False where a mask zeroes the tap for every channel pair), an output shift by one row down or one
    column right, and for transposed convolutions (stride 2) the column where the output crop starts."""

    kernel: tuple[int, int]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    stride: int = 1
    taps: torch.Tensor | None = None
    shift_down: bool = False
    shift_right: bool = False
    transposed: bool = False
    col_offset: int = 0
    weight: Callable[[], tuple[torch.Tensor, torch.Tensor | None]] | None = None  # effective (weight, bias)
    out_groups: torch.Tensor | None = None  # colour group of each output channel: needed for per-channel sampling


@dataclass
class Op:
    """``out = module(pre(input))`` for ``conv`` (a module with ``conv_geometry()``); ``out = module(*inputs, *consts)`` for
    ``point``, where ``consts`` are per-channel constants laid out like the first input (a class embedding ``[N, C, 1, 1]``):
    the sampler hands each colour group its own channels of them."""

    kind: str
    out: str
    inputs: tuple[str, ...]
    module: Any
    pre: Callable[[torch.Tensor], torch.Tensor] | None = None
    consts: tuple[torch.Tensor, ...] = ()


def run_op(op: Op, args: Sequence[torch.Tensor], consts: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """``op`` on its input activations ``args``; a point op also gets ``consts`` (default: its own)."""
    if op.kind == "point":
        return op.module(*args, *(op.consts if consts is None else consts))
    return op.module(op.pre(args[0]) if op.pre is not None else args[0])


def run_graph(ops: Sequence[Op], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every activation of the network for the input activation ``x``."""
    acts = {INPUT: x}
    for op in ops:
        acts[op.out] = run_op(op, [acts[name] for name in op.inputs])
    return acts


def geometries(ops: Sequence[Op]) -> dict[int, ConvGeometry]:
    """Each convolution's geometry, by ``id`` of its module: read once, as building it (the masks' live taps) is not free."""
    return {id(op.module): op.module.conv_geometry() for op in ops if op.kind != "point"}


def colour_groups(ops: Sequence[Op], acts: dict[str, torch.Tensor], groups: int,
                  geometry: dict[int, ConvGeometry] | None = None) -> dict[str, torch.Tensor]:
    """The colour group of every channel of every activation, for sampling channel by channel.

    The input's channels are the colours (any extra constant channel counts as the last). A
    convolution's come from its geometry's ``out_groups``; a point op's from its first input, or,
    where it halves the channels (a gated unit ``tanh(a) * sigmoid(b)``), from either half of it,
    which must then be grouped alike, so that each colour group's gates pair with each other.
    ``geometry`` is :func:`geometries` of ``ops``, when the caller has it already.
    """
    geometry = geometries(ops) if geometry is None else geometry
    found = {INPUT: torch.arange(acts[INPUT].shape[1]).clamp(max=groups - 1)}
    for op in ops:
        channels = acts[op.out].shape[1]
        if op.kind != "point":
            out = geometry[id(op.module)].out_groups
            if out is None or len(out) != channels:
                raise ValueError(f"per-channel sampling needs {type(op.module).__name__}.conv_geometry().out_groups "
                                 f"(one colour group per output channel, {channels})")
            found[op.out] = out.cpu()
            continue
        first = found[op.inputs[0]]
        if len(first) == 2 * channels and torch.equal(first[:channels], first[channels:]):
            found[op.out] = first[:channels]
        elif len(first) == channels:
            found[op.out] = first
        else:
            raise ValueError(f"point op {op.out!r} maps {len(first)} channels to {channels}: only channel-wise ops or "
                             "gated units over two halves grouped alike can be sampled channel by channel")
    return found


def dependency_maps(ops: Sequence[Op], acts: dict[str, torch.Tensor], groups: int = 1,
                    geometry: dict[int, ConvGeometry] | None = None) -> dict[str, torch.Tensor]:
    """For every activation ``[G, H', W']``: the last generation step each channel group's position depends on (-1: none).

    Steps count pixels in raster order and, with ``groups`` G > 1, the G colour channels inside a
    pixel (step ``pixel * G + channel``): channel group g of a masked convolution's output sees
    group g' of its input at the centre tap only where its mask allows (g' < g for mask A, g' <= g
    for mask B). With G > 1, point ops must act channel by channel (additions, ReLUs). ``geometry``
    is :func:`geometries` of ``ops``, when the caller has it already.
    """
    geometry = geometries(ops) if geometry is None else geometry
    height, width = acts[INPUT].shape[2:]
    steps = torch.arange(height * width, dtype=torch.float64).view(1, height, width) * groups
    deps = {INPUT: steps + torch.arange(groups, dtype=torch.float64).view(groups, 1, 1)}
    for op in ops:
        shape = tuple(acts[op.out].shape[2:])
        if op.kind == "point":
            deps[op.out] = torch.stack([deps[name].expand(groups, *shape) for name in op.inputs]).amax(0)
            continue
        g = geometry[id(op.module)]
        source = deps[op.inputs[0]]
        if g.transposed:
            deps[op.out] = torch.stack([_transposed_dependencies(g, d) for d in source])
            continue
        kh, kw = g.kernel
        left, right, top, bottom = g.padding
        padded = F.pad(source[:, None] + 1, (left, right, top, bottom))  # padding reads as -1 after the shift back
        patches = F.unfold(padded, (kh, kw), stride=g.stride)  # [G_in, kh * kw, L]
        taps = torch.ones(groups * groups, kh * kw, dtype=torch.bool) if g.taps is None else g.taps.reshape(-1, kh * kw).bool().cpu()
        if taps.shape[0] != groups * groups:  # one tap pattern for every pair of groups
            taps = taps.expand(groups * groups, -1)
        taps = taps.reshape(groups, groups, kh * kw)
        rows = (padded.shape[2] - kh) // g.stride + 1
        out = torch.stack([(patches * taps[go, :, :, None]).amax((0, 1)) for go in range(groups)]) - 1  # masked taps read as -1
        out = out.view(groups, rows, -1)
        if g.shift_down:
            out = F.pad(out[:, :-1], (0, 0, 1, 0), value=-1)
        if g.shift_right:
            out = F.pad(out[:, :, :-1], (1, 0), value=-1)
        deps[op.out] = out[:, : shape[0], : shape[1]]
    return deps


def _transposed_dependencies(g: ConvGeometry, dep: torch.Tensor) -> torch.Tensor:
    kh, kw = g.kernel
    h, w = dep.shape
    full = torch.full((2 * h + kh, 2 * w + kw), -1.0, dtype=dep.dtype)
    for a in range(kh):
        for b in range(kw):
            view = full[a : a + 2 * h : 2, b : b + 2 * w : 2]
            torch.maximum(view, dep, out=view)
    return full[: 2 * h, g.col_offset : g.col_offset + 2 * w]


class DependencyCache(ImageCache):
    """Exact incremental sampling over an op graph: each activation position is computed once.

    After each drawn pixel, every op recomputes only the positions whose last input pixel is that one.
    Before the first step, the positions that depend on no drawn pixel are computed once: by one full
    forward when rows are known (``first_row`` > 0, completion), else alone (the rest of the network
    waits for its pixels anyway), which skips a full forward of the batch. ``graph`` is the family's op list (the same one
    its ``forward`` runs) and ``make_input`` turns the unit-scaled image into the input activation
    (image channels first). A step is a pixel (one joint draw of its channels) or, for per-channel
    draws, one colour channel of a pixel: then each activation's colour groups (:func:`colour_groups`)
    are scheduled on their own (``dependency_maps`` with ``groups``).
    """

    def __init__(self, model: ImageModel, levels: torch.Tensor, cond: torch.Tensor | None, graph: Sequence[Op],
                 make_input: Callable[[torch.Tensor], torch.Tensor], first_row: int = 0) -> None:
        super().__init__(model, levels, cond)
        self.ops = list(graph)
        x = make_input(self.unit(levels))
        # Known rows: every activation from one full forward. From nothing, only the positions that depend on no pixel
        # are ever read before the schedule computes them, so only those are computed (below), into zeroed activations.
        self.acts = run_graph(self.ops, x) if first_row > 0 else _zero_activations(self.ops, x)
        groups = self.draws  # colour groups: one per channel drawn on its own, or one for a joint draw
        self.geometry = geometries(self.ops)
        deps = dependency_maps(self.ops, self.acts, groups, self.geometry)
        steps = levels.shape[2] * levels.shape[3] * groups
        self.schedule: list[list[tuple[Op, int, int, int, int, int]]] = [[] for _ in range(steps)]
        for op in self.ops:
            for g in range(groups):
                for step, r0, r1, c0, c1 in _boxes(deps[op.out][g], steps):
                    self.schedule[step].append((op, g, r0, r1, c0, c1))
        # Each activation's channels of each colour group: a slice where they are contiguous, else an index.
        device = levels.device
        if groups == 1:
            self.channels: dict[tuple[str, int], slice | torch.Tensor] = {(name, 0): slice(None) for name in self.acts}
        else:
            found = colour_groups(self.ops, self.acts, groups, self.geometry)
            self.channels = {(name, g): _selector(found[name] == g, device) for name in self.acts for g in range(groups)}
        # Effective weights once per run, cut to each colour group's output channels (a transposed convolution's weight
        # rows are its inputs: it is never cut); a window that yields one output position is a matrix product, far
        # cheaper than a tiny convolution call, so the flattened weight is kept too. Point ops' constants are cut to
        # each group's channels of their first input once too, not at every step.
        self.weights: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = {}
        self.consts: dict[tuple[int, int], list[torch.Tensor]] = {}
        for op in self.ops:
            if op.kind == "point":
                for g in range(groups):
                    first = self.channels[op.inputs[0], g]
                    self.consts[id(op), g] = [c if c.shape[1] == 1 else c[:, first] for c in op.consts]
                continue
            geo = self.geometry[id(op.module)]
            weight, bias = (w.detach() if w is not None else None for w in geo.weight())
            for g in range(groups):
                if not geo.transposed:
                    cut = self.channels[op.out, g]
                    weight_g, bias_g = weight[cut], None if bias is None else bias[cut]
                else:
                    weight_g, bias_g = weight, bias
                self.weights[id(op.module), g] = weight_g, bias_g, weight_g.flatten(1)
        if first_row == 0:
            self._compute_pixel_free(deps)

    def _compute_pixel_free(self, deps: dict[str, torch.Tensor]) -> None:
        """Each op's positions that depend on no pixel, in op order: all that sampling from nothing reads unscheduled."""
        with parametrize.cached():
            for op in self.ops:
                geo = None if op.kind == "point" else self.geometry[id(op.module)]
                for g in range(self.draws):
                    free = deps[op.out][g] < 0
                    if geo is not None and geo.shift_down:  # a shifted conv's shifted-in row and column are zeros, not computed
                        free[0] = False
                    if geo is not None and geo.shift_right:
                        free[:, 0] = False
                    box = _box(free)
                    if box is not None:
                        self._store(op, g, *box)

    def params_at(self, t: int) -> torch.Tensor:
        row, col, channel = self.position(t)
        return self.model.distribution.channel_params(self.acts[OUTPUT][:, :, row, col], channel)

    def generate(self, *args: Any, **kwargs: Any) -> None:
        # Modules called inside point ops (PixelCNN++'s weight-normalised 1x1s) would recompute their weights at every
        # call: cache parametrised weights for the whole run.
        with parametrize.cached():
            super().generate(*args, **kwargs)

    def update(self, t: int, value: torch.Tensor) -> None:
        super().update(t, value)
        row, col, _ = self.position(t)
        channels = self.levels.shape[1]
        self.acts[INPUT][:, :channels, row, col] = self.unit(self.levels[:, :, row, col])
        for entry in self.schedule[t]:
            self._store(*entry)

    def _store(self, op: Op, g: int, r0: int, r1: int, c0: int, c1: int) -> None:
        """Write colour group ``g`` of ``op``'s output over the box ``[r0:r1, c0:c1]`` into its cached activation."""
        self.acts[op.out][:, self.channels[op.out, g], r0:r1, c0:c1] = self._compute(op, g, r0, r1, c0, c1)

    def _compute(self, op: Op, g: int, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Colour group ``g`` of ``op``'s output over the box ``[r0:r1, c0:c1]``, from its inputs' current values."""
        if op.kind == "point":
            inputs = [self.acts[name][:, self.channels[name, g], r0:r1, c0:c1] for name in op.inputs]
            return run_op(op, inputs, self.consts[id(op), g])
        source = self.acts[op.inputs[0]]
        geo = self.geometry[id(op.module)]
        weight, bias, flat = self.weights[id(op.module), g]
        kh, kw = geo.kernel
        if geo.transposed:
            off = geo.col_offset
            i0, i1 = max(0, -(-(r0 - kh + 1) // 2)), min(source.shape[2], (r1 - 1) // 2 + 1)
            j0, j1 = max(0, -(-(c0 + off - kw + 1) // 2)), min(source.shape[3], (c1 - 1 + off) // 2 + 1)
            window = source[:, :, i0:i1, j0:j1]
            out = F.conv_transpose2d(op.pre(window) if op.pre is not None else window, weight, bias, stride=2)
            y0, x0 = r0 - 2 * i0, c0 + off - 2 * j0
            return out[:, :, y0 : y0 + r1 - r0, x0 : x0 + c1 - c0]
        # A shifted conv's output at (r, c) is the unshifted conv's at (r - 1, c) or (r, c - 1).
        down, right, s = int(geo.shift_down), int(geo.shift_right), geo.stride
        left, _, top, _ = geo.padding
        window = _window(source, s * (r0 - down) - top, s * (r1 - 1 - down) - top + kh, s * (c0 - right) - left,
                         s * (c1 - 1 - right) - left + kw)
        if op.pre is not None:
            window = op.pre(window)
        if window.shape[2] == kh and window.shape[3] == kw:  # one output position
            return F.linear(window.flatten(1), flat, bias)[:, :, None, None]
        return F.conv2d(window, weight, bias, stride=s)


def _selector(member: torch.Tensor, device: torch.device) -> slice | torch.Tensor:
    """The channels where ``member`` is True: a slice (a view, no copy) if they are contiguous, else an index on ``device``."""
    (index,) = member.nonzero(as_tuple=True)
    if len(index) and int(index[-1] - index[0]) + 1 == len(index):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index.to(device)


def _window(x: torch.Tensor, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    """``x[:, :, r0:r1, c0:c1]`` with zeros where the window leaves the tensor (the convolutions' zero padding)."""
    h, w = x.shape[2:]
    inner = x[:, :, max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)]
    pad = (max(0, -c0), max(0, c1 - w), max(0, -r0), max(0, r1 - h))
    return F.pad(inner, pad) if any(pad) else inner


def _zero_activations(ops: Sequence[Op], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zeroed activations shaped as ``run_graph(ops, x)``'s, the input ``x`` itself, from a forward of one image.

    Each op's result is cut to one image: an op may add per-image tensors of the whole batch that it holds itself
    (a class embedding), which would broadcast the rest back to the batch.
    """
    shapes = {INPUT: x[:1]}
    for op in ops:
        shapes[op.out] = run_op(op, [shapes[name] for name in op.inputs], [c[:1] for c in op.consts])[:1]
    return {name: x if name == INPUT else a.new_zeros(len(x), *a.shape[1:]) for name, a in shapes.items()}


def _box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)``, the bounding box of ``mask``'s True positions, or None if there are none."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _boxes(dep: torch.Tensor, steps: int) -> list[tuple[int, int, int, int, int]]:
    """For each step that some positions of ``dep`` wait for: ``(step, r0, r1, c0, c1)``, the bounding box of those positions."""
    flat = dep.long().reshape(-1)
    valid = flat >= 0
    index = flat[valid]
    rows = torch.arange(dep.shape[0]).repeat_interleave(dep.shape[1])[valid]
    cols = torch.arange(dep.shape[1]).repeat(dep.shape[0])[valid]
    big = 1 << 30
    lo_r = torch.full((steps,), big).scatter_reduce(0, index, rows, "amin")
    hi_r = torch.full((steps,), -1).scatter_reduce(0, index, rows, "amax")
    lo_c = torch.full((steps,), big).scatter_reduce(0, index, cols, "amin")
    hi_c = torch.full((steps,), -1).scatter_reduce(0, index, cols, "amax")
    used = (hi_r >= 0).nonzero()[:, 0]
    # One conversion to Python ints for all steps (an int() per tensor element costs microseconds each).
    boxes = zip(used.tolist(), lo_r[used].tolist(), (hi_r[used] + 1).tolist(), lo_c[used].tolist(), (hi_c[used] + 1).tolist(), strict=True)
    return list(boxes)
