"""Convert a pclucas14/pixel-cnn-pp state dict (``.pth``) into a zoo PixelCNN++ checkpoint folder.

    python tools/convert_pixelcnn_pp.py models/pcnn_lr.0.00040_nr-resnet5_nr-filters160_889.pth -o converted/

Our modules carry the reference's names, so the mapping is mechanical: the ``module.`` prefix of
``nn.DataParallel`` is dropped and the legacy weight-norm parameters ``weight_g``/``weight_v``
become ``parametrizations.weight.original0``/``original1`` (same shapes: both use dim 0, also for
the transposed convolutions and the ``nin`` Linears). The config (nr_resnet, nr_filters,
nr_logistic_mix, channels) is read off the tensor shapes. The file is the maintainer's own local
download, read with ``weights_only=True``; zoo.load never reads pickles.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

import zoo

WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference parameter names to ours."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        head, _, leaf = key.rpartition(".")
        out[f"{head}.{WEIGHT_NORM.get(leaf, leaf)}"] = value
    return out


def infer_config(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """nr_resnet, nr_filters, nr_logistic_mix and channels from the shapes of a (converted) state dict."""
    v = state["u_init.conv.parametrizations.weight.original1"]
    channels = v.shape[1] - 1
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"up_layers\.0\.u_stream\.(\d+)\.", k))}
    outputs = state["nin_out.lin_a.parametrizations.weight.original1"].shape[0]
    per_mix = 10 if channels == 3 else 3
    if outputs % per_mix:
        raise ValueError(f"nin_out has {outputs} outputs, not a multiple of {per_mix} for {channels} channel(s)")
    return dict(nr_resnet=len(blocks), nr_filters=v.shape[0], nr_logistic_mix=outputs // per_mix, channels=channels)


def convert(state: dict[str, torch.Tensor], height: int = 32, width: int = 32) -> zoo.AutoregressiveModel:
    converted = convert_state_dict(state)
    model = zoo.build("pixelcnn++", None, height=height, width=width, dropout=0.0, **infer_config(converted))
    model.load_state_dict(converted)  # strict: every tensor must find its place, and every place a tensor
    return model.eval()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a state dict saved by pclucas14/pixel-cnn-pp (torch.save(model.state_dict()))")
    p.add_argument("--height", type=int, default=32)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = convert(state, args.height, args.width)
    model.save_pretrained(args.output)
    print(f"wrote {args.output} ({model.num_parameters():,} parameters); load it with zoo.load('local-dir:{args.output}')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
