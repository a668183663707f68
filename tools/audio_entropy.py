"""Entropy of the marginal code distribution of an audio dataset split: the model card's baseline.

    python tools/audio_entropy.py [NAME] [--split test] [--data ROOT]

NAME is a registry entry or a recipe in hub_configs/ (default wavenet-fsdd); its sample rate,
levels and encoding quantise the clips exactly as the model sees them. The result, in bits per
sample, is what a model that ignores all context needs; a trained WaveNet must score far below it.
"""

from __future__ import annotations

import argparse
import json
import sys

import zoo
from zoo.datasets import load_dataset
from zoo.recipe import Recipe
from zoo.registry import data_dir
from zoo.windows import AudioCodes


def marginal_entropy(model: zoo.AutoregressiveModel, dataset: str, split: str, root: str | None = None) -> dict[str, float | int | str]:
    """Bits per sample of the split's code histogram, with the model's quantisation and rate."""
    clips = load_dataset(dataset, split, root)
    codes = AudioCodes(list(clips), model.space)
    every = [codes.segment(i, 0, n) for i, n in enumerate(codes.lengths)]
    return {"dataset": dataset, "split": split, "clips": len(every), "samples": sum(codes.lengths),
            "sample_rate": model.sample_rate, "levels": model.space.levels, "encoding": model.space.encoding,
            "marginal_entropy_bits_per_sample": round(model.space.marginal_entropy(every), 4)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("name", nargs="?", default="wavenet-fsdd")
    p.add_argument("--split", default="test")
    p.add_argument("--data", help="data root (default: $ZOO_DATA or ../shared/data)")
    args = p.parse_args()
    path = data_dir("hub_configs") / args.name / "recipe.json"
    if not path.is_file():
        print(f"no recipe {path}", file=sys.stderr)
        return 2
    recipe = Recipe.load(path)
    print(json.dumps(marginal_entropy(recipe.build_model(), recipe.dataset, args.split, args.data), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
