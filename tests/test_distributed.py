"""`torchrun --nproc_per_node=2` with gloo on CPU: training and evaluation equal the single-process runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import zoo
import zoo.datasets
from zoo.recipe import Recipe
from zoo.train import evaluate, train


@pytest.fixture
def toy_npz(tmp_path):
    rng = np.random.default_rng(0)
    stripes = np.tile([0, 1, 0, 1], (4, 1))
    arrays = {f"x_{split}": (stripes ^ (rng.random((n, 4, 4)) < 0.1)).astype(np.uint8) for split, n in (("train", 128), ("valid", 50))}
    path = tmp_path / "toy.npz"
    np.savez(path, **arrays)
    return path


def torchrun(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "zoo", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_train_like_one_and_evaluate_alike(tmp_path, toy_npz):
    recipe = dict(name="toy", family="pixelcnn", preset="tiny", dataset=f"npz:{toy_npz}", batch_size=16, steps=6, lr=3e-3,
                  warmup_steps=2, eval_every=3, save_every=3, precision="fp32", seed=1)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    torchrun("train", "--recipe", str(tmp_path / "recipe.json"), "--output", str(tmp_path / "ddp"), cwd=tmp_path)
    train(Recipe.from_dict(recipe), tmp_path / "single", progress=False)

    ddp = zoo.load(f"local-dir:{tmp_path / 'ddp' / 'last'}").state_dict()
    single = zoo.load(f"local-dir:{tmp_path / 'single' / 'last'}").state_dict()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
    ddp_metrics = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ddp_metrics if "valid" in r] == [3, 6]  # rank 0 alone writes the log

    out = torchrun("eval", f"local-dir:{tmp_path / 'single' / 'last'}", "--dataset", f"npz:{toy_npz}", "--split", "valid",
                   "--batch-size", "7", "-o", str(tmp_path / "eval.json"), cwd=tmp_path)
    assert out.stdout.count('"nll_nats"') == 1  # printed once, by rank 0
    sharded = json.loads((tmp_path / "eval.json").read_text())
    model = zoo.load(f"local-dir:{tmp_path / 'single' / 'last'}")
    whole = evaluate(model, zoo.datasets.load_dataset(f"npz:{toy_npz}", "valid"), progress=False)
    assert sharded["examples"] == whole["examples"] == 50
    assert sharded["nll_nats"] == pytest.approx(whole["nll_nats"], rel=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_single_process_nodes_with_a_c10d_rendezvous_train_like_one(tmp_path, toy_npz):
    """Multi-node as two one-process "nodes" on loopback: torchrun --nnodes=2 --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:PORT."""
    recipe = dict(name="toy", family="pixelcnn", preset="tiny", dataset=f"npz:{toy_npz}", batch_size=16, steps=4, lr=3e-3,
                  warmup_steps=1, eval_every=2, save_every=2, precision="fp32", seed=2, device="cpu")
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = []
    for host in ("true", "false"):  # the first node hosts the rendezvous store, the second joins it
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
               f"--rdzv-endpoint={endpoint}", "--rdzv-id=zoo-test", f"--rdzv-conf=is_host={host}", "--local-addr=127.0.0.1",
               "--max-restarts=0", "-m", "zoo", "train", "--recipe", str(tmp_path / "recipe.json"), "--output", str(tmp_path / "nodes")]
        nodes.append(subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    train(Recipe.from_dict(recipe), tmp_path / "single", progress=False)
    two = zoo.load(f"local-dir:{tmp_path / 'nodes' / 'last'}").state_dict()
    one = zoo.load(f"local-dir:{tmp_path / 'single' / 'last'}").state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    start = json.loads((tmp_path / "nodes" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2 and start["device"] == "cpu"
