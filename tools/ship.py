"""Ship a trained checkpoint as a bundled registry entry (maintainers only).

    python tools/ship.py NAME RUN_FOLDER [--split test] [--samples 16]

Measures the entry's metric on its dataset split in fp32 with the same code as `zoo eval`, copies
the weights and config into hub_configs/NAME/, records sha256, parameter count and the measured
metrics in registry/<family>.json (with the split's first-100 "check" value the tests re-score),
renders a seeded sample grid, and writes the model card from the entry plus tools/cards/NAME.md
(the hand-written prose: data, limits). The card says what chose the shipped weights (the step of
``best/`` on the held-out validation split, or ``last/``'s final step); a run whose recipe trained or
validated on a test split is refused (zoo.recipe.Recipe), and so is ``--split`` naming a non-test split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import zoo
from zoo.audio import write_audio, write_spectrogram
from zoo.cards import entry_card
from zoo.checkpoint import load_folder, sha256_file
from zoo.datasets import TEST_SPLITS, load_dataset
from zoo.image import write_grid
from zoo.recipe import Recipe
from zoo.registry import data_dir, entry_from_data
from zoo.train import evaluate

ROOT = Path(__file__).resolve().parent.parent
CHECK_EXAMPLES = 100


def upscale_nearest(path: Path, factor: int) -> None:
    """Enlarge a small sample grid for display, pixel for pixel (no smoothing invents detail)."""
    from PIL import Image

    with Image.open(path) as im:
        big = im.resize((im.width * factor, im.height * factor), Image.Resampling.NEAREST)
    big.save(path)


def _audio_samples(model: zoo.AutoregressiveModel, name: str, target: Path, seed: int, real: list) -> list[str]:
    """One second per speaker, each exactly what `zoo sample NAME --speaker S --seconds 1 --seed SEED` writes.

    ``real`` (the evaluation split's clips) gives the first speaker's first recording for a
    spectrogram beside the generated one.
    """
    lines, clips = [], []
    for speaker in model.labels or [None]:
        clip = model.sample(1, seconds=1.0, condition=speaker, generator=torch.Generator().manual_seed(seed), progress=True)[0]
        write_audio(target / f"sample-{speaker or 'all'}.wav", clip, model.sample_rate)
        lines.append(f"- [{speaker or 'sample'}](sample-{speaker or 'all'}.wav)")
        clips.append(clip)
    write_spectrogram(clips[0], model.sample_rate, str(target / "spectrogram.png"))
    recording = next(c for c in real if not model.labels or c.speaker == model.labels[0])
    write_spectrogram(recording.waveform[: model.sample_rate], model.sample_rate, str(target / "spectrogram-real.png"))
    speaker_arg = f" --speaker {model.labels[0]}" if model.labels else ""
    return [f"Generated (left) and a real test recording, {recording.path.name} (right), log-magnitude spectrograms:", "",
            "![spectrogram of a generated sample](spectrogram.png) ![spectrogram of a real recording](spectrogram-real.png)",
            "", "One second per speaker:", "", *lines, "",
            f"`zoo sample {name}{speaker_arg} --seconds 1 --seed {seed} -o sample.wav --spectrogram spectrogram.png`"]


def selection_note(run_folder: Path, recipe: Recipe) -> str:
    """One paragraph: what chose these weights, from the run's recipe and the folder's metrics.json."""
    exported = json.loads((run_folder / "metrics.json").read_text()) if (run_folder / "metrics.json").is_file() else {}
    step = exported.get("step")
    valid = f"`{recipe.valid_dataset or recipe.dataset}` `{recipe.valid_split}`"
    subset = f"the first {recipe.eval_examples:,} examples of " if recipe.eval_examples else ""
    if run_folder.name == "best" and recipe.valid_split:
        return (f"**What chose these weights:** the run's `best/`, the step ({step:,}) with the lowest NLL on {subset}{valid}, "
                f"held out of training (evaluated every {recipe.eval_every:,} steps); the test split played no part.")
    watched = f"; {subset}{valid} was only watched" if recipe.valid_split else ""
    return (f"**What chose these weights:** nothing: they are the recipe's final step ({step:,}){watched}; "
            "the test split played no part.")


def training_curve(run_folder: Path) -> list[str]:
    """The run's validation curve and cost, from the ``metrics.jsonl`` beside the exported folder (empty if there is none)."""
    log = run_folder.parent / "metrics.jsonl"
    if not log.is_file():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    valid = [r for r in records if "valid" in r]
    segments: list[dict[str, Any]] = []  # one per start or resume: where it ran and its last elapsed time
    for r in records:
        if "world_size" in r:
            segments.append({**r, "elapsed_s": 0.0})
        elif "elapsed_s" in r and segments:
            segments[-1]["elapsed_s"] = r["elapsed_s"]
    lines = ["## Validation curve", ""]
    if segments:
        first = segments[0]
        resumed = f", resumed {len(segments) - 1} time(s)" if len(segments) > 1 else ""
        minutes = sum(s["elapsed_s"] for s in segments) / 60
        precision = "fp32" if first["precision"] == "fp32" else f"{first['precision']} autocast"
        lines += [f"Trained on {first['device']} ({first['world_size']} process(es), {precision}){resumed}: "
                  f"{minutes:.0f} minutes of training in all.", ""]
    if valid:
        lines += ["| step | valid NLL (nats) | valid bits/dim |", "|---|---|---|"]
        lines += [f"| {r['step']:,} | {r['valid']['nll_nats']:.3f} | {r['valid']['bits_per_dim']:.4f} |" for r in valid]
        lines.append("")
    return lines


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("run_folder", type=Path, help="a checkpoint folder written by zoo train (e.g. runs/NAME/best)")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="ROMEO:", help="text models: the prompt of the card's sample")
    args = p.parse_args()

    # A run's `last/` is rewritten only when the run ends: one stopped early and resumed keeps the
    # stale export until then. Ship only a folder that holds the recipe's final step.
    if args.run_folder.name == "last":
        exported = json.loads((args.run_folder / "metrics.json").read_text()).get("step")
        planned = json.loads((args.run_folder / "recipe.json").read_text())["steps"]
        if exported != planned:
            sys.exit(f"{args.run_folder} holds step {exported}, not the recipe's final step {planned}: "
                     "the run is still going or was stopped; resume it (zoo train NAME --output RUN) first")
    recipe_used = Recipe.load(args.run_folder / "recipe.json")  # refuses a run that trained or validated on a test split
    if args.split not in TEST_SPLITS:
        sys.exit(f"--split {args.split!r}: a card reports a test split ({', '.join(sorted(TEST_SPLITS))}), never one a run chose on")
    model = load_folder(args.run_folder)
    registry_file = ROOT / "registry" / f"{model.family}.json"
    catalogue = json.loads(registry_file.read_text())
    record = next(r for r in catalogue["entries"] if r["name"] == args.name)

    raw = load_dataset(record["dataset"], args.split)
    data = model.prepare_dataset(raw, train=False)
    result = evaluate(model, data, progress=True)
    print(json.dumps(result), file=sys.stderr)
    # The tests re-score this first-N subset (`zoo eval NAME --split S --limit N`): whole splits take minutes.
    check = evaluate(model, data, limit=CHECK_EXAMPLES)

    target = ROOT / "hub_configs" / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "recipe.json"):
        shutil.copyfile(args.run_folder / name, target / name)
    if model.modality == "text":
        metrics = {"nats_per_char": round(result["nats_per_dim"], 4), "bits_per_char": round(result["bits_per_dim"], 4)}
    elif model.modality == "audio":  # nats per clip; bits per sample; the context-free baseline the model must beat
        from audio_entropy import marginal_entropy

        baseline = marginal_entropy(model, record["dataset"], args.split)["marginal_entropy_bits_per_sample"]
        metrics = {"nll_nats": round(result["nll_nats"], 3), "bits_per_dim": round(result["bits_per_dim"], 4),
                   "marginal_entropy_bits": baseline}
    else:
        metrics = {"nll_nats": round(result["nll_nats"], 3), "bits_per_dim": round(result["bits_per_dim"], 5)}
    metrics["check"] = {"examples": check["examples"], "nll_nats": round(check["nll_nats"], 3)}
    record.update(sha256=sha256_file(target / "model.safetensors"), params=model.num_parameters(), status="available", bundled=True,
                  metrics={**metrics, "split": args.split, "examples": result["examples"]})
    registry_file.write_text(json.dumps(catalogue, indent=2) + "\n")

    generator = torch.Generator().manual_seed(args.seed)
    if model.modality == "text":
        sample_md = ["```text", model.complete(args.prompt, max_new_chars=400, generator=generator), "```", "",
                     f"`zoo complete {args.name} --prompt {json.dumps(args.prompt)} --max-new-chars 400 --seed {args.seed}`"]
    elif model.modality == "audio":
        sample_md = _audio_samples(model, args.name, target, args.seed, raw)
    else:
        if model.labels:  # one row per class
            per_row = max(1, args.samples // len(model.labels))
            condition = [label for label in model.labels for _ in range(per_row)]
            images = model.sample(len(condition), condition=condition, generator=generator, progress=True)
            write_grid(images, model, str(target / "samples.png"), nrow=per_row)
            how = f"{per_row} per class, one row each ({', '.join(model.labels)})"
        else:
            write_grid(model.sample(args.samples, generator=generator, progress=True), model, str(target / "samples.png"))
            how = f"{args.samples} samples, `zoo sample {args.name} -n {args.samples} --seed {args.seed}`"
        upscale_nearest(target / "samples.png", 4)
        sample_md = [f"![samples](samples.png)  \n{how}."]

    entry = entry_from_data(record)
    assert data_dir("hub_configs") / args.name == target
    recipe = json.loads((target / "recipe.json").read_text())
    notes = (ROOT / "tools" / "cards" / f"{args.name}.md").read_text().format(**result, params=entry.params)
    if model.modality == "text":
        table = [f"Measured in fp32 on the `{args.split}` split of `{entry.dataset}`, as {result['examples']:,} consecutive "
                 f"chunks of {data.length} characters, each scored from the begin-of-text token:", "",
                 "| nats/char | bits/char |", "|---|---|", f"| {result['nats_per_dim']:.4f} | {result['bits_per_dim']:.4f} |"]
    elif model.modality == "audio":
        table = [f"Measured in fp32 on the {result['examples']:,} clips of the `{args.split}` split of `{entry.dataset}`, each "
                 "scored whole from its first sample; the baseline is the entropy of the split's marginal code distribution:", "",
                 "| NLL (nats/clip) | bits/sample | marginal entropy (bits/sample) |", "|---|---|---|",
                 f"| {result['nll_nats']:.1f} | {result['bits_per_dim']:.4f} | {entry.metrics['marginal_entropy_bits']:.4f} |"]
    else:
        table = [f"Measured in fp32 on the {result['examples']:,} images of the `{args.split}` split of `{entry.dataset}`:", "",
                 "| NLL (nats/image) | bits/dim |", "|---|---|", f"| {result['nll_nats']:.2f} | {result['bits_per_dim']:.4f} |"]
    results = ["## Results", "", *table, "", f"Command: `zoo eval {args.name} --split {args.split}`", "",
               selection_note(args.run_folder, recipe_used), "", *training_curve(args.run_folder), "## Samples", "",
               *sample_md, "", notes]
    (target / "README.md").write_text(entry_card(entry, modality=model.modality, recipe=recipe, sections=results))
    # The shipped entry loads and verifies, read from the catalogue on disk by a fresh process.
    subprocess.run([sys.executable, "-c", f"import zoo; zoo.load({args.name!r})"], check=True)
    print(f"shipped {args.name}: {entry.metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
