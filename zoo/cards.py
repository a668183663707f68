"""Model cards: the README.md of a checkpoint folder, made with huggingface_hub's ModelCard."""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import EvalResult

METRIC_NAMES = {"nll_nats": "NLL (nats per example)", "bits_per_dim": "bits/dim"}


def _card(data: ModelCardData, body: list[str]) -> str:
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


def default_card(model: Any, *, recipe: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> str:
    """A minimal card for a folder written by ``save_pretrained`` (training runs, exports)."""
    data = ModelCardData(library_name="zoo", tags=["zoo", model.modality, model.family, "autoregressive"])
    lines = [
        f"# {model.family} checkpoint",
        "",
        f"A `{model.family}` model ({model.num_parameters():,} parameters) in the zoo checkpoint format.",
        "",
        "```python\nimport zoo\nmodel = zoo.load(\"local-dir:PATH_TO_THIS_FOLDER\")\n```",
    ]
    if metrics:
        lines += ["", "## Metrics", "", "```json", json.dumps(metrics, indent=2), "```"]
    if recipe:
        lines += ["", "## Training recipe", "", "```json", json.dumps(recipe, indent=2), "```"]
    return _card(data, lines)


def entry_card(entry: Any, *, modality: str, recipe: dict[str, Any] | None, sections: list[str]) -> str:
    """The card of a registry entry: front matter with a model-index of its measured metrics, then prose."""
    split = entry.metrics.get("split", "test")
    results = [
        EvalResult(task_type="unconditional-image-generation" if modality == "image" else "other",
                   dataset_type=entry.dataset, dataset_name=entry.dataset, dataset_split=split,
                   metric_type=key, metric_name=METRIC_NAMES.get(key, key), metric_value=value)
        for key, value in entry.metrics.items() if isinstance(value, (int, float))
    ]
    data = ModelCardData(library_name="zoo", license=entry.license, tags=["zoo", modality, entry.family, "autoregressive"],
                         model_name=entry.name, eval_results=results or None)
    lines = [
        f"# {entry.name}",
        "",
        entry.description,
        "",
        "```python",
        "import zoo",
        f'model = zoo.load("{entry.name}")',
        "```",
        "",
        *sections,
    ]
    if recipe:
        lines += ["", "## Training recipe", "", f"Reproduce with `zoo train {entry.name} --output runs/{entry.name}`:", "",
                  "```json", json.dumps(recipe, indent=2), "```"]
    if entry.paper:
        lines += ["", "## Reference", "", entry.paper]
    return _card(data, lines)
