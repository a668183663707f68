"""Names, listing, metadata, aliases, deprecations and third-party plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import zoo
from zoo.registry import Entry

TINY = {"height": 4, "width": 4, "hidden": 12, "n_residual": 1, "input_kernel": 3, "output_hidden": 12}


@pytest.fixture
def fresh(isolated_registry):
    """An isolated registry holding the built-in families and a few test entries."""
    reg = isolated_registry
    reg.add_entry(Entry("pixelcnn-toy-a", "pixelcnn", TINY, dataset="toy", metrics={"nll_nats": 1.0, "split": "test"},
                        status="unpublished", aliases=["toy-a"], deprecated_names=["old-toy-a"]))
    reg.add_entry(Entry("pixelcnn-toy-b", "pixelcnn", TINY, status="unpublished"))
    return reg


def test_list_models_patterns_and_filters(fresh):
    assert zoo.list_models() == ["pixelcnn-toy-a", "pixelcnn-toy-b"]
    assert zoo.list_models("*-a") == ["pixelcnn-toy-a"]
    assert zoo.list_models("toy-a") == ["pixelcnn-toy-a"]  # aliases match too
    assert zoo.list_models(modality="image", family="pixelcnn") == ["pixelcnn-toy-a", "pixelcnn-toy-b"]
    assert zoo.list_models(modality="audio") == []
    assert zoo.list_models(pretrained=True) == []
    assert zoo.list_models(pretrained=False) == ["pixelcnn-toy-a", "pixelcnn-toy-b"]


def test_model_info_carries_metadata(fresh):
    info = zoo.model_info("toy-a")
    assert info["name"] == "pixelcnn-toy-a" and info["modality"] == "image"
    assert info["metrics"] == {"nll_nats": 1.0, "split": "test"} and info["dataset"] == "toy"
    json.dumps(info)  # plain data


def test_unknown_names_suggest_close_matches(fresh):
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'pixelcnn-toy-a'"):
        zoo.model_info("pixelcnn-toy-aa")
    with pytest.raises(zoo.UnknownModelError, match="unknown model 'zzz'; `zoo list`"):
        zoo.load("zzz")
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'pixelcnn'"):
        zoo.build("pixelcn")


def test_paths_and_repo_ids_are_pointed_at_the_right_prefix(fresh, tmp_path):
    with pytest.raises(zoo.UnknownModelError, match="looks like a path.*local-dir:"):
        zoo.load(str(tmp_path))
    with pytest.raises(zoo.UnknownModelError, match="looks like a Hub repo id.*hf-hub:org/repo"):
        zoo.load("org/repo")


def test_deprecated_name_warns_and_loads(fresh):
    with pytest.warns(zoo.ZooDeprecationWarning, match="'old-toy-a' is deprecated; use 'pixelcnn-toy-a'"):
        model = zoo.load("old-toy-a", pretrained=False)
    assert model.entry.name == "pixelcnn-toy-a"


def test_unpublished_weights_say_how_to_get_a_model(fresh):
    with pytest.raises(zoo.WeightsUnavailableError, match="no weights are published.*zoo train pixelcnn-toy-b.*pretrained=False"):
        zoo.load("pixelcnn-toy-b")
    assert zoo.load("pixelcnn-toy-b", pretrained=False).config.height == 4


def test_duplicate_and_malformed_names_are_refused(fresh):
    with pytest.raises(zoo.ConfigError, match="already registered"):
        fresh.add_entry(Entry("toy-a", "pixelcnn", TINY))
    with pytest.raises(zoo.ConfigError, match="invalid model name"):
        fresh.add_entry(Entry("Bad Name", "pixelcnn", TINY))
    with pytest.raises(zoo.UnknownModelError, match="unknown family"):
        zoo.register_entry(Entry("x-y", "nonesuch", {}))


PLUGIN = '''
import zoo
from zoo.models.pixelcnn import PixelCNN, PixelCNNConfig


@zoo.register_family("toy-pixelcnn", config=PixelCNNConfig)
class ToyPixelCNN(PixelCNN):
    family = "toy-pixelcnn"


zoo.register_entry(zoo.Entry(name="toy-plugin-model", family="toy-pixelcnn", config={config}, status="unpublished"))
'''


def _install_dist(site, dist, module, source):
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{dist} = {module}\n")


def test_plugins_from_installed_distributions(tmp_path):
    """Two real distributions on sys.path: one adds a family and an entry, the other raises on import."""
    site = tmp_path / "site"
    site.mkdir()
    _install_dist(site, "zoo-toy-plugin", "zoo_toy_plugin", PLUGIN.replace("{config}", repr(TINY)))
    _install_dist(site, "zoo-broken-plugin", "zoo_broken_plugin", "raise RuntimeError('plugin bug')\n")
    script = textwrap.dedent("""
        import warnings, json, zoo
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = zoo.list_models("toy*")
            families = zoo.list_families()
        model = zoo.load("toy-plugin-model", pretrained=False)
        print(json.dumps({"names": names, "families": families, "family": model.family,
                          "warnings": [str(w.message) for w in caught]}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["names"] == ["toy-plugin-model"]
    assert "toy-pixelcnn" in result["families"] and "pixelcnn" in result["families"]
    assert result["family"] == "toy-pixelcnn"
    assert any("zoo-broken-plugin" in w and "plugin bug" in w and "skipped" in w for w in result["warnings"])


def test_registry_data_agrees_with_hub_configs():
    """One source per fact: family/config/recipe/card live in hub_configs/<name>/, the rest in registry/*.json."""
    from huggingface_hub.utils import validate_repo_id

    from zoo.checkpoint import read_checkpoint_config, sha256_file
    from zoo.registry import FOLDER_FIELDS, data_dir, entry_from_data

    names = set()
    for path in sorted(data_dir("registry").glob("*.json")):
        data = json.loads(path.read_text())
        assert set(data) == {"entries"}, f"{path.name}: only 'entries' (the family is in each hub_configs config.json)"
        for raw in data["entries"]:
            assert not set(raw) & set(FOLDER_FIELDS), f"{raw['name']} repeats {set(raw) & set(FOLDER_FIELDS)}"
            entry = entry_from_data(raw)
            folder = data_dir("hub_configs") / entry.name
            family, config = read_checkpoint_config(folder / "config.json")
            assert (entry.family, entry.config) == (family, config)
            assert path.stem == family, f"{entry.name} is filed in {path.name}, its config says {family}"
            if entry.hub_repo is not None:
                validate_repo_id(entry.hub_repo)
            if entry.bundled:
                assert sha256_file(folder / entry.filename) == entry.sha256, f"{entry.name}: bundled weights differ from sha256"
                assert (folder / "README.md").is_file()
            if entry.status == "available" and not entry.bundled:
                assert entry.hub_repo, f"{entry.name} is available but neither bundled nor on the Hub"
            assert entry.recipe == (str(folder / "recipe.json") if (folder / "recipe.json").is_file() else None)
            names.add(entry.name)
    assert names == {p.name for p in data_dir("hub_configs").iterdir() if p.is_dir()}
    assert zoo.model_info("pixelcnn-pp-cifar10")["name"] == "pixelcnn++-cifar10"


def test_listing_and_info_need_no_torch():
    script = ("import sys, zoo.cli; zoo.cli.main(['list']); zoo.cli.main(['info', 'wavenet-fsdd']); zoo.cli.main(['--help'])\n"
              "print(sorted(m for m in ('torch', 'huggingface_hub', 'zoo.models.wavenet') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
