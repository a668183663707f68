"""The shipped catalogue is consistent: recipes build their entry's config, bundled weights verify and score."""

from __future__ import annotations

import dataclasses
import json

import pytest

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


@pytest.mark.parametrize("name", zoo.list_models(pretrained=True))
def test_zoo_eval_reproduces_the_published_metric(name, capsys):
    """`zoo eval NAME --split SPLIT --limit N` gives the number ship.py recorded for the split's first N examples.

    The whole split's figure was measured by the same code (tools/ship.py); re-scoring 10,000 images
    per entry would take minutes. Needs ../shared/data, as on the CI machine.
    """
    from zoo.cli import main
    from zoo.datasets import DATASETS, default_data_root

    info = zoo.model_info(name)
    check = info["metrics"]["check"]
    try:
        DATASETS[info["dataset"]](default_data_root(), info["metrics"]["split"])
    except zoo.DatasetError:
        pytest.skip(f"{info['dataset']} is not in {default_data_root()}")
    assert main(["eval", name, "--split", info["metrics"]["split"], "--limit", str(check["examples"])]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == check["examples"]
    assert result["nll_nats"] == pytest.approx(check["nll_nats"], rel=1e-6, abs=1e-3)  # float32 sums, any thread count
