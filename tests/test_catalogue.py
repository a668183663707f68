"""The shipped catalogue is consistent: recipes build their entry's config, bundled weights verify and score."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

import zoo
from zoo.registry import data_dir
from zoo.train import Recipe

NAMES = zoo.list_models()


@pytest.mark.parametrize("name", NAMES)
def test_recipe_builds_the_entry_config(name):
    info = zoo.model_info(name)
    recipe_path = data_dir("hub_configs") / name / "recipe.json"
    assert recipe_path.is_file(), f"{name} has no recipe"
    recipe = Recipe.load(recipe_path)
    assert recipe.name == name and recipe.family == info["family"]
    assert dataclasses.asdict(recipe.build_model().config) == info["config"]


@pytest.mark.parametrize("name", zoo.list_models(pretrained=True))
def test_published_entries_load_verified_and_carry_their_metrics(name):
    info = zoo.model_info(name)
    assert info["sha256"] and info["params"] and info["metrics"].get("split")
    model = zoo.load(name)
    assert model.num_parameters() == info["params"]
    scores = model.log_prob(model.example_batch(2), condition=model.labels[0] if model.labels else None)
    assert scores.shape == (2,) and bool((scores < 0).all())
    card = (data_dir("hub_configs") / name / "README.md").read_text()
    assert "model-index" in card and f"split: {info['metrics']['split']}" in card


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models(pretrained=True))
def test_zoo_eval_reproduces_the_published_metric(name, capsys):
    """`zoo eval NAME --split SPLIT` gives the card's number (needs ../shared/data, as on the CI machine)."""
    from zoo.cli import main
    from zoo.data import DATASETS, default_data_root

    info = zoo.model_info(name)
    try:
        DATASETS[info["dataset"]](default_data_root(), info["metrics"]["split"])
    except zoo.DatasetError:
        pytest.skip(f"{info['dataset']} is not in {default_data_root()}")
    # Whole splits (up to 10,000 images) are worth every core: these are large convolutions, not the tiny
    # ops for which the suite pins one thread. Nothing else runs beside the suite.
    threads = torch.get_num_threads()
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    try:
        assert main(["eval", name, "--split", info["metrics"]["split"]]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == info["metrics"]["examples"]
    key = "nll_nats" if "nll_nats" in info["metrics"] else "nats_per_char"
    measured = result["nll_nats"] if key == "nll_nats" else result["nats_per_dim"]
    assert measured == pytest.approx(info["metrics"][key], abs=1e-3)
