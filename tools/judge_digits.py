"""Judge a class-conditional MNIST model's samples with a digit classifier (maintainers only).

    python tools/judge_digits.py MODEL [--per-class 32] [--seed 0] [--json out.json]

"Recognisable" needs a judge that is not the model itself: a small CNN trained here for a minute on
MNIST's training images (the first 55,000; its accuracy is reported on the held-out last 5,000,
the `mnist` `valid` split) classifies ``--per-class`` samples drawn for each label, and the script
prints, per digit, the share the classifier reads as the digit that was asked for. The classifier
is cached in ``runs/digit-judge.pt`` (git-ignored) so later calls take seconds. MODEL is anything
``zoo.load`` accepts (a name, ``local-dir:PATH`` or a run's ``best/`` folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo.datasets import load_dataset

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "digit-judge.pt"


def classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def _tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("mnist", split)
    x, y = data.tensors
    return x.float().div(255).view(-1, 1, 28, 28), y.long()


def train_judge(epochs: int = 2, seed: int = 0) -> tuple[nn.Module, float]:
    """The classifier and its accuracy on ``mnist`` ``valid``, trained (or read from the cache)."""
    net = classifier()
    if CACHE.is_file():
        saved = torch.load(CACHE, weights_only=True)
        net.load_state_dict(saved["state"])
        return net.eval(), float(saved["valid_accuracy"])
    x, y = _tensors("train")
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    vx, vy = _tensors("valid")
    with torch.no_grad():
        accuracy = float((net(vx).argmax(1) == vy).float().mean())
    CACHE.parent.mkdir(exist_ok=True)
    tmp = CACHE.with_suffix(".tmp")
    torch.save({"state": net.state_dict(), "valid_accuracy": accuracy}, tmp)
    tmp.replace(CACHE)
    return net, accuracy


def judge(model: zoo.AutoregressiveModel, net: nn.Module, per_class: int, seed: int) -> dict[str, float]:
    """Per label: the share of ``per_class`` samples (seeded) that the classifier reads as that label."""
    labels = model.labels or []
    if sorted(labels) != [str(d) for d in range(10)]:
        raise SystemExit(f"{model.family} model has labels {labels}: the judge needs one label per digit 0-9")
    condition = [label for label in labels for _ in range(per_class)]
    images = model.sample(len(condition), condition=condition, generator=torch.Generator().manual_seed(seed), progress=True)
    with torch.no_grad():
        read = net(images.float().div(model.space.levels - 1)).argmax(1)
    wanted = torch.tensor([int(label) for label in condition])
    return {label: float((read[wanted == int(label)] == int(label)).float().mean()) for label in labels}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--per-class", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    net, accuracy = train_judge()
    model = zoo.load(args.model)
    shares = judge(model, net, args.per_class, args.seed)
    result = {"model": args.model, "judge_valid_accuracy": round(accuracy, 4), "per_class": args.per_class, "seed": args.seed,
              "recognised": {k: round(v, 3) for k, v in shares.items()}, "mean": round(sum(shares.values()) / len(shares), 3)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
