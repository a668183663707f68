"""The training loop: it learns, resumes bit-exactly after a stop or a crash, and exports a loadable folder."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from torch.utils.data import TensorDataset

import zoo
import zoo.datasets
import zoo.train
from zoo.train import Recipe, lr_at, train


@pytest.fixture
def toy_dataset(monkeypatch):
    """Binary 4x4 images with structure (vertical stripes plus noise) registered as dataset 'toy'."""
    g = torch.Generator().manual_seed(0)
    stripes = torch.tensor([0, 1, 0, 1]).repeat(4, 1)
    data = {split: ((stripes ^ (torch.rand(n, 4, 4, generator=g) < 0.1)).long().unsqueeze(1).to(torch.uint8),)
            for split, n in (("train", 256), ("valid", 64))}
    monkeypatch.setitem(zoo.datasets.DATASETS, "toy", lambda root, split: TensorDataset(*data[split]))


def recipe(**overrides) -> Recipe:
    base = dict(name="toy", family="pixelcnn", preset="tiny", dataset="toy", batch_size=32, steps=12, lr=3e-3,
                warmup_steps=2, eval_every=6, save_every=4, ema_decay=0.9, precision="fp32", seed=3)
    return Recipe.from_dict({**base, **overrides})


def weights(folder):
    return zoo.load(f"local-dir:{folder}").state_dict()


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_training_learns_and_exports(tmp_path, toy_dataset):
    result = train(recipe(steps=60, eval_every=20, lr=1e-2, ema_decay=None), tmp_path / "run", progress=False)
    assert result["finished"] and result["step"] == 60
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r["valid"]["bits_per_dim"] for r in lines if "valid" in r]
    assert valid[-1] < 0.7  # stripes with 10% noise: 0.47 bits/dim is reachable, uniform is 1
    for sub in ("best", "last"):
        folder = tmp_path / "run" / sub
        assert {"config.json", "model.safetensors", "README.md", "recipe.json"} <= {p.name for p in folder.iterdir()}
    assert json.loads((tmp_path / "run" / "best" / "recipe.json").read_text())["steps"] == 60


def test_resume_after_sigterm_matches_uninterrupted(tmp_path, toy_dataset, monkeypatch):
    train(recipe(), tmp_path / "straight", progress=False)
    real = zoo.train.batch_indices

    def stop_at_step_5(n, batch_size, seed, step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(n, batch_size, seed, step)

    monkeypatch.setattr(zoo.train, "batch_indices", stop_at_step_5)
    first = train(recipe(), tmp_path / "resumed", progress=False)
    assert not first["finished"] and first["step"] == 6
    monkeypatch.setattr(zoo.train, "batch_indices", real)
    assert train(recipe(), tmp_path / "resumed", resume=True, progress=False)["finished"]
    assert_same(weights(tmp_path / "straight" / "last"), weights(tmp_path / "resumed" / "last"))
    assert_same(weights(tmp_path / "straight" / "best"), weights(tmp_path / "resumed" / "best"))


def test_resume_after_crash_matches_uninterrupted(tmp_path, toy_dataset, monkeypatch):
    train(recipe(), tmp_path / "straight", progress=False)
    real = zoo.train.batch_indices

    def crash_at_step_10(n, batch_size, seed, step):
        if step == 10:
            raise RuntimeError("power cut")
        return real(n, batch_size, seed, step)

    monkeypatch.setattr(zoo.train, "batch_indices", crash_at_step_10)
    with pytest.raises(RuntimeError, match="power cut"):
        train(recipe(), tmp_path / "crashed", progress=False)
    assert torch.load(tmp_path / "crashed" / "state.pt", weights_only=True)["step"] == 8  # last periodic save
    monkeypatch.setattr(zoo.train, "batch_indices", real)
    train(recipe(), tmp_path / "crashed", resume=True, progress=False)
    assert_same(weights(tmp_path / "straight" / "last"), weights(tmp_path / "crashed" / "last"))


def test_schedule_and_overrides():
    r = recipe(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(r, 0) == pytest.approx(0.1) and lr_at(r, 9) == pytest.approx(1.0)
    assert lr_at(r, 100) == pytest.approx(0.1)
    exp = r.with_overrides(["schedule=exponential"])
    assert lr_at(exp, 10) == pytest.approx(1.0) and lr_at(exp, 100) == pytest.approx(0.1)
    assert lr_at(exp, 55) == pytest.approx(0.1**0.5)
    with pytest.raises(zoo.ConfigError, match="unknown schedule 'linear'"):
        lr_at(r.with_overrides(["schedule=linear"]), 50)
    r2 = r.with_overrides(["steps=7", "config.hidden=24", "schedule=constant"])
    assert r2.steps == 7 and r2.config == {"hidden": 24} and r2.schedule == "constant"
    with pytest.raises(zoo.ConfigError, match="unknown recipe field 'stepz'"):
        r.with_overrides(["stepz=3"])
    with pytest.raises(zoo.ConfigError, match="key=value"):
        r.with_overrides(["steps"])
    with pytest.raises(zoo.ConfigError, match="unknown precision 'bf61'; accepted: bf16, fp32"):
        r.with_overrides(["precision=bf61"])


def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(zoo.DatasetError, match="binarized_mnist.npz"):
        zoo.datasets.load_dataset("binarized-mnist", "train", tmp_path)
    with pytest.raises(zoo.DatasetError, match="unknown dataset 'nope'"):
        zoo.datasets.load_dataset("nope", "train", tmp_path)


def test_ema_warmup_keeps_little_of_the_initial_weights(toy_dataset, tmp_path):
    """Step 0 uses decay min(0.9, 1/10): the EMA is 0.1 * initial + 0.9 * trained weights, not 0.9 * initial."""
    r = recipe(steps=1, ema_decay=0.9, valid_split=None)
    train(r, tmp_path / "run", progress=False)
    torch.manual_seed(r.seed)
    initial = r.build_model().state_dict()
    trained = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["model"]
    ema = weights(tmp_path / "run" / "last")
    for key, value in ema.items():
        if value.is_floating_point() and key in trained:
            torch.testing.assert_close(value, 0.1 * initial[key] + 0.9 * trained[key])
    off = train(r.with_overrides(["ema_warmup=false"]), tmp_path / "off", progress=False)
    assert off["finished"]
    ema_off = weights(tmp_path / "off" / "last")
    key = next(k for k, v in ema_off.items() if v.is_floating_point() and k in trained)
    torch.testing.assert_close(ema_off[key], 0.9 * initial[key] + 0.1 * trained[key])
