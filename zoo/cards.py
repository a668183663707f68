"""Model cards: the README.md of a checkpoint folder, made with huggingface_hub's ModelCard."""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard_data import EvalResult

__all__ = ["default_card", "entry_card"]

METRIC_NAMES = {"nll_nats": "NLL (nats per example)", "bits_per_dim": "bits/dim", "nats_per_char": "nats/char", "bits_per_char": "bits/char"}


def _card(data: ModelCardData, body: list[str]) -> str:
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"))


def default_card(model: Any, *, recipe: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> str:
    """The card of a folder written by ``save_pretrained`` (training runs, exports, publishing).

    When the folder comes from ``zoo train``, its validation metrics and dataset go into the
    model-index, so the Hub shows what was measured and on which split.
    """
    dataset = (recipe or {}).get("dataset")
    split = (recipe or {}).get("valid_split")
    measured = (metrics or {}).get("valid") or {}
    results = _eval_results(model.modality, dataset, split, measured) if dataset and split else []
    data = ModelCardData(library_name="zoo", tags=["zoo", model.modality, model.family, "autoregressive"],
                         datasets=[dataset] if dataset else None, model_name=(recipe or {}).get("name") or model.family,
                         eval_results=results or None)
    lines = [
        f"# {(recipe or {}).get('name') or model.family}",
        "",
        f"A `{model.family}` model ({model.num_parameters():,} parameters) in the zoo checkpoint format.",
        "",
        "```python\nimport zoo\nmodel = zoo.load(\"local-dir:PATH_TO_THIS_FOLDER\")\n```",
    ]
    if metrics:
        lines += ["", "## Metrics", "", f"Measured on the `{split}` split of `{dataset}` during training:" if measured else "",
                  "", "```json", json.dumps(metrics, indent=2), "```"]
    if recipe:
        lines += ["", "## Training recipe", "", "```json", json.dumps(recipe, indent=2), "```"]
    return _card(data, lines)


def _eval_results(modality: str, dataset: str | None, split: str, metrics: dict[str, Any]) -> list[EvalResult]:
    task = "unconditional-image-generation" if modality == "image" else "text-generation" if modality == "text" else "audio-generation"
    return [
        EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset, dataset_split=split,
                   metric_type=key, metric_name=METRIC_NAMES.get(key, key), metric_value=value)
        for key, value in metrics.items() if key in METRIC_NAMES and isinstance(value, (int, float))
    ]


def entry_card(entry: Any, *, modality: str, recipe: dict[str, Any] | None, sections: list[str]) -> str:
    """The card of a registry entry: front matter with a model-index of its measured metrics, then prose."""
    results = _eval_results(modality, entry.dataset, entry.metrics.get("split", "test"), entry.metrics)
    data = ModelCardData(library_name="zoo", license=entry.license, tags=["zoo", modality, entry.family, "autoregressive"],
                         datasets=[entry.dataset] if entry.dataset else None, model_name=entry.name, eval_results=results or None)
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
