"""The shipped catalogue is consistent: recipes build their entry's config, bundled weights verify and score."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import zoo
from zoo.datasets import load_dataset
from zoo.recipe import Recipe
from zoo.registry import data_dir

from .helpers import load_tool

NAMES = zoo.list_models()
# Entries trained here carry a recipe; the others (GPT-2) are downloaded checkpoints of other projects.
TRAINED_HERE = [name for name in NAMES if (data_dir("hub_configs") / name / "recipe.json").is_file()]
PUBLISHED_HERE = [name for name in zoo.list_models(pretrained=True) if name in TRAINED_HERE]


def test_entries_without_a_recipe_are_downloads_that_say_so():
    for name in sorted(set(NAMES) - set(TRAINED_HERE)):
        info = zoo.model_info(name)
        assert not info["bundled"] and info["hub_repo"], f"{name} has no recipe but is not a downloaded checkpoint"
        assert "not measured here" in info["description"].lower(), f"{name} must say what was not measured here"


@pytest.mark.parametrize("name", TRAINED_HERE)
def test_recipe_builds_the_entry_config(name):
    info = zoo.model_info(name)
    recipe_path = data_dir("hub_configs") / name / "recipe.json"
    assert recipe_path.is_file(), f"{name} has no recipe"
    recipe = Recipe.load(recipe_path)
    assert recipe.name == name and recipe.family == info["family"]
    assert dataclasses.asdict(recipe.build_model().config) == info["config"]


@pytest.mark.parametrize("name", PUBLISHED_HERE)
def test_published_entries_load_verified_and_carry_their_metrics(name):
    info = zoo.model_info(name)
    assert info["sha256"] and info["params"] and info["metrics"].get("split")
    model = zoo.load(name)
    assert model.num_parameters() == info["params"]
    scores = model.log_prob(model.example_batch(2), condition=model.labels[0] if model.labels else None)
    assert scores.shape == (2,) and bool((scores < 0).all())
    card = (data_dir("hub_configs") / name / "README.md").read_text()
    assert "model-index" in card and f"split: {info['metrics']['split']}" in card


@pytest.mark.parametrize("name", PUBLISHED_HERE)
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


# The shared data's held-out splits (need ../shared/data, as on the CI machine).
def need(filename):
    from zoo.datasets import default_data_root

    if not (default_data_root() / filename).exists():
        pytest.skip(f"{filename} is not in {default_data_root()} (../shared/data beside the checkout, or $ZOO_DATA)")


def test_shared_held_out_splits_when_present():
    need("mnist.npz")
    need("cifar10_lossless_subset.npz")
    assert len(load_dataset("mnist", "train")) == 55_000 and len(load_dataset("mnist", "valid")) == 5_000
    train, valid = load_dataset("cifar10-subset", "train"), load_dataset("cifar10-subset", "valid")
    assert len(train) == 3_500 and len(valid) == 500


def test_shared_cifar10_jpeg_held_out_ranks_when_present():
    """The per-class ranks left out of cifar10-jpeg's train are those of the exact images 3,500-3,999, and the files match them."""
    from zoo.datasets import CIFAR10_JPEG_VALID_RANKS, CIFAR10_VALID, default_data_root

    need("cifar10_lossless_subset.npz")
    need("cifar10_jpeg.tar.gz")
    with np.load(default_data_root() / "cifar10_lossless_subset.npz") as archive:
        y = archive["y_train"]
    classes = sorted(CIFAR10_JPEG_VALID_RANKS)
    lo, hi = CIFAR10_VALID
    assert {c: (int((y[:lo] == i).sum()), int((y[:hi] == i).sum())) for i, c in enumerate(classes)} == CIFAR10_JPEG_VALID_RANKS
    jpeg, (exact, labels) = load_dataset("cifar10-jpeg", "valid"), load_dataset("cifar10-subset", "valid").tensors
    order = torch.argsort(labels * hi + torch.arange(len(labels)))  # the JPEG split is sorted by class, then rank
    assert torch.equal(jpeg.tensors[1], labels[order])
    assert (jpeg.tensors[0].float() - exact[order].float()).abs().mean() < 7  # JPEG error 5.8/255; any other image is ~60
    assert len(load_dataset("cifar10-jpeg", "train")) == 49_500


def test_shared_binarized_mnist_when_present():
    need("binarized_mnist.npz")
    x, = load_dataset("binarized-mnist", "valid").tensors
    assert x.shape == (10000, 1, 28, 28) and int(x.max()) == 1


def _verify_tool():
    """tools/verify_catalogue.py, the one command that re-measures every card."""
    return load_tool("verify_catalogue")


def test_verify_catalogue_tolerance_follows_the_recorded_rounding():
    tool = _verify_tool()
    assert tool.tolerance(1.4899) == pytest.approx(0.5e-4 + 2e-6 * 1.4899)
    assert tool.tolerance(86.97) == pytest.approx(0.005 + 2e-6 * 86.97)
    rows = tool.compare({"bits_per_dim": 1.1268, "split": "test"}, {"bits_per_dim": 1.12684, "nll_nats": 600.0})
    assert rows == [("bits_per_dim", 1.1268, 1.12684, True)]  # only recorded numbers are compared
    assert not tool.compare({"bits_per_dim": 1.1268}, {"bits_per_dim": 1.1270})[0][3]


def test_verify_catalogue_skips_what_it_cannot_measure_and_fails_on_errors(tmp_path, capsys):
    tool = _verify_tool()
    downloads = sorted(set(NAMES) - set(TRAINED_HERE))
    assert tool.main([*downloads, PUBLISHED_HERE[0], "--data", str(tmp_path)]) == 0  # an empty data root: everything skips
    out = capsys.readouterr().out
    assert f"summary: {len(downloads) + 1} skipped" in out and "dataset missing" in out
    assert "records no measured metric" in out or not downloads
    assert tool.main(["no-such-model", "--data", str(tmp_path)]) == 1
    assert "ERROR UnknownModelError" in capsys.readouterr().out


def test_verify_catalogue_matches_the_check_subset(capsys):
    """The tool's comparison on ship.py's first-100 check value of a small entry (needs ../shared/data)."""
    tool = _verify_tool()
    need("binarized_mnist.npz")
    assert tool.main(["pixelrnn-rowlstm-binarized-mnist", "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert "[100 examples" in out and ": ok" in out and "summary: 1 ok" in out
