"""Dataset adapters: each yields examples in the data's natural form (integer image levels).

Known dataset names map onto the files of a data root (``--data DIR``, else ``$ZOO_DATA``, else
``../shared/data`` beside a source checkout). Scaling and binarisation belong to the model's data
space (zoo/spaces.py), never to these adapters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .errors import DatasetError


@dataclass(frozen=True)
class NpzImages:
    """An ``.npz`` with ``x_<split>`` arrays ``[N, H, W]`` or ``[N, H, W, C]`` of integer levels (labels optional)."""

    filename: str
    splits: tuple[str, ...]
    labels: tuple[str, ...] | None = None

    def load(self, root: Path, split: str) -> Dataset:
        path = root / self.filename
        if not path.is_file():
            raise DatasetError(f"dataset file {path} not found; expected {self.filename} (keys x_<split> for {self.splits}) in the data root")
        if split not in self.splits:
            raise DatasetError(f"{self.filename} has splits {list(self.splits)}, not {split!r}")
        with np.load(path) as archive:
            key = f"x_{split}"
            if key not in archive:
                raise DatasetError(f"{path} has no array {key!r} (found {sorted(archive.files)})")
            x = torch.from_numpy(archive[key])
            y = torch.from_numpy(archive[f"y_{split}"]).long() if f"y_{split}" in archive else None
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        x = x.contiguous()
        return TensorDataset(x, y) if y is not None else TensorDataset(x)


DATASETS: dict[str, Callable[[Path, str], Dataset]] = {
    "binarized-mnist": NpzImages("binarized_mnist.npz", ("train", "valid", "test")).load,
    "mnist": NpzImages("mnist.npz", ("train", "test"), labels=tuple("0123456789")).load,
    "cifar10-subset": NpzImages("cifar10_lossless_subset.npz", ("train", "test")).load,
}


def default_data_root() -> Path:
    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"])
    checkout = Path(__file__).resolve().parent.parent
    return checkout.parent / "shared" / "data"


def load_dataset(name: str, split: str, root: str | os.PathLike[str] | None = None) -> Dataset:
    """Examples of dataset ``name`` (a key of :data:`DATASETS`) for ``split``, from ``root``."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    root = Path(root) if root is not None else default_data_root()
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist; pass --data DIR or set ZOO_DATA")
    return DATASETS[name](root, split)
