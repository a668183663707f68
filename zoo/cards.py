"""Model cards: the README.md of a checkpoint folder, made with huggingface_hub's ModelCard."""

from __future__ import annotations

import json
from typing import Any


def default_card(model: Any, *, recipe: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> str:
    """A minimal card for a folder written by ``save_pretrained`` (training runs, exports)."""
    from huggingface_hub import ModelCard, ModelCardData

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
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))
