"""The training loop: it learns, resumes bit-exactly after a stop or a crash, exports a loadable folder, follows its device.

Everything here runs on data the tests make (no ../shared/data needed).
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

import zoo
import zoo.datasets
import zoo.train
from zoo.recipe import Recipe, lr_at
from zoo.train import backend_for, resolve_device, train

TOY = {"path": None}


@pytest.fixture
def toy_dataset(tmp_path_factory):
    """Binary 4x4 images with structure (vertical stripes plus noise) in an npz the recipes name as ``npz:PATH``."""
    g = torch.Generator().manual_seed(0)
    stripes = torch.tensor([0, 1, 0, 1]).repeat(4, 1)
    arrays = {f"x_{split}": (stripes ^ (torch.rand(n, 4, 4, generator=g) < 0.1)).to(torch.uint8).numpy()
              for split, n in (("train", 256), ("valid", 64))}
    path = tmp_path_factory.mktemp("toy") / "toy.npz"
    np.savez(path, **arrays)
    TOY["path"] = path
    return path


def recipe(**overrides) -> Recipe:
    base = dict(name="toy", family="pixelcnn", preset="tiny", dataset=f"npz:{TOY['path']}", batch_size=32, steps=12, lr=3e-3,
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


def test_schedule_and_overrides(toy_dataset):
    r = recipe(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(r, 0) == pytest.approx(0.1) and lr_at(r, 9) == pytest.approx(1.0)
    assert lr_at(r, 100) == pytest.approx(0.1)
    exp = r.with_overrides(["schedule=exponential"])
    assert lr_at(exp, 10) == pytest.approx(1.0) and lr_at(exp, 100) == pytest.approx(0.1)
    assert lr_at(exp, 55) == pytest.approx(0.1**0.5)
    with pytest.raises(zoo.ConfigError, match="schedule is 'linear'; accepted: one of cosine, exponential, constant"):
        r.with_overrides(["schedule=linear"])
    r2 = r.with_overrides(["steps=7", "config.hidden=24", "schedule=constant"])
    assert r2.steps == 7 and r2.config == {"hidden": 24} and r2.schedule == "constant"
    with pytest.raises(zoo.ConfigError, match="unknown recipe field 'stepz'"):
        r.with_overrides(["stepz=3"])
    with pytest.raises(zoo.ConfigError, match="key=value"):
        r.with_overrides(["steps"])
    with pytest.raises(zoo.ConfigError, match="precision is 'bf61'; accepted: one of bf16, fp16, fp32"):
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


@pytest.mark.parametrize(("setting", "message"), [
    ("steps=abc", "steps is 'abc'; accepted: an integer >= 1"),
    ("steps=1.5", "steps is 1.5; accepted: an integer >= 1"),
    ("steps=true", "steps is True; accepted: an integer >= 1"),
    ("batch_size=0", "batch_size is 0; accepted: an integer >= 1"),
    ("lr=-1", "lr is -1; accepted: a number > 0"),
    ("lr=abc", "lr is 'abc'; accepted: a number > 0"),
    ("warmup_steps=-1", "warmup_steps is -1; accepted: an integer >= 0"),
    ("betas=[0.9]", r"betas is \(0.9,\); accepted: two numbers in \[0, 1\)"),
    ("betas=[0.9,1.5]", r"betas is \(0.9, 1.5\); accepted: two numbers in \[0, 1\)"),
    ("ema_decay=1", r"ema_decay is 1; accepted: null or a number in \(0, 1\)"),
    ("ema_decay=0", r"ema_decay is 0; accepted: null or a number in \(0, 1\)"),
    ("grad_clip=0", "grad_clip is 0; accepted: null or a number > 0"),
    ("eval_examples=0", "eval_examples is 0; accepted: null or an integer >= 1"),
    ("min_lr_ratio=2", r"min_lr_ratio is 2; accepted: a number in \[0, 1\]"),
    ("compile=yes", "compile is 'yes'; accepted: true or false"),
    ("device=gpu", "device is 'gpu'; accepted: auto, cpu, cuda, cuda:N or mps"),
    ("finetune_steps=5", "finetune_steps 5 needs finetune_dataset"),
    ("finetune_dataset=mnist", "finetune_dataset 'mnist' is set but finetune_steps is 0"),
    ("valid_split=test", "valid_split is 'test', a test split"),
    ("valid_split=nanogpt-val", "valid_split is 'nanogpt-val', a test split"),
    ("train_split=test", "train_split is 'test', a test split"),
])
def test_recipe_validates_every_field(toy_dataset, setting, message):
    with pytest.raises(zoo.ConfigError, match=message):
        recipe().with_overrides([setting])


def test_fp16_is_cuda_only(toy_dataset, tmp_path):
    with pytest.raises(zoo.ConfigError, match="fp16' runs on CUDA only"):
        recipe(precision="fp16", device="cpu")
    if not torch.cuda.is_available():  # "auto" resolves to the CPU here: refused when the run starts
        with pytest.raises(zoo.ConfigError, match="fp16' runs on CUDA only"):
            train(recipe(precision="fp16"), tmp_path / "run", progress=False)


def test_backend_follows_the_device():
    assert backend_for("cuda:0") == backend_for(torch.device("cuda", 1)) == "nccl"
    assert backend_for("cpu") == backend_for(torch.device("cpu")) == "gloo"


def test_device_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(zoo.ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # under torchrun each rank takes its own GPU
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(zoo.ConfigError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


def test_training_step_tensors_live_on_the_model_device(toy_dataset, tmp_path, monkeypatch):
    seen = []
    real = zoo.train._Loss.forward

    def spy(self, batch):
        x, cond = batch
        seen.append((x.device, next(self.model.parameters()).device))
        return real(self, batch)

    monkeypatch.setattr(zoo.train._Loss, "forward", spy)
    result = train(recipe(steps=2, device="cpu", valid_split=None), tmp_path / "run", progress=False)
    assert result["device"] == "cpu" and seen == [(torch.device("cpu"), torch.device("cpu"))] * 2
    start = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start == {"step": 0, "device": "cpu", "world_size": 1, "precision": "fp32"}


def test_state_resumes_through_map_location(toy_dataset, tmp_path, monkeypatch):
    """States load with ``map_location`` = the run's device (the path that serves a state saved on a GPU): cpu -> cpu here."""
    train(recipe(steps=8), tmp_path / "straight", progress=False)
    real_indices = zoo.train.batch_indices

    def stop_at_step_3(n, batch_size, seed, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_indices(n, batch_size, seed, step)

    monkeypatch.setattr(zoo.train, "batch_indices", stop_at_step_3)
    train(recipe(steps=8), tmp_path / "moved", progress=False)
    monkeypatch.setattr(zoo.train, "batch_indices", real_indices)
    state = torch.load(tmp_path / "moved" / "state.pt", weights_only=True)
    assert state["step"] == 4 and state["device"] == "cpu"
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("map_location"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    done = train(recipe(steps=8, device="cpu"), tmp_path / "moved", resume=True, progress=False)
    assert done["finished"] and calls == [torch.device("cpu")]
    assert_same(weights(tmp_path / "straight" / "last"), weights(tmp_path / "moved" / "last"))


def test_bf16_without_native_support_falls_back_to_fp32_and_says_so(toy_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.train, "native_bf16", lambda: False)
    monkeypatch.setattr(zoo.train, "_warned", set())
    with pytest.warns(RuntimeWarning, match="neither AVX512-BF16 nor AMX"):
        result = train(recipe(steps=1, precision="bf16", device="cpu", valid_split=None), tmp_path / "run", progress=False)
    assert result["precision"] == "fp32"
    start = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["precision"] == "fp32" and start["requested_precision"] == "bf16" and "emulated" in start["precision_note"]
    monkeypatch.setattr(zoo.train, "native_bf16", lambda: True)
    assert train(recipe(steps=1, precision="bf16", device="cpu", valid_split=None), tmp_path / "bf16", progress=False)["precision"] == "bf16"


def test_gpu_check_says_so_in_one_line_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == ["gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check"]
