"""Re-measure every published checkpoint's headline number and compare it with the registry.

    python tools/verify_catalogue.py [NAME ...] [--data DIR] [--device cpu] [--limit N] [--batch-size 250]

For each published entry, scores the whole metric split its registry entry names (the number in
its card) with `zoo.train.evaluate`, the code behind `zoo eval`, in fp32, and compares it with the
recorded metrics: every recorded figure must match to its rounding plus a float32 summation
allowance (the order of the sums depends on threads and batch sizes). Entries whose dataset is
not under the data root are skipped, naming it. Prints a table; exits 1 on any mismatch or entry that fails to load.

`--limit N` scores only the first N examples (to try the tool quickly); only where the registry
records a check value for exactly N examples (ship.py records one for 100) is it compared.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from typing import Any

import zoo
from zoo.datasets import load_dataset
from zoo.train import evaluate

RELATIVE = 2e-6  # float32 sums of thousands of per-example values, in any order


def measured_figures(modality: str, result: dict[str, float]) -> dict[str, float]:
    """The figures a registry entry records, from `evaluate`'s result (ship.py's names)."""
    if modality == "text":
        return {"nats_per_char": result["nats_per_dim"], "bits_per_char": result["bits_per_dim"]}
    return {"nll_nats": result["nll_nats"], "bits_per_dim": result["bits_per_dim"]}


def tolerance(recorded: float) -> float:
    """Half a unit of the recorded value's last decimal, plus the float32 summation allowance."""
    exponent = Decimal(repr(recorded)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return 0.5 * 10.0**-decimals + RELATIVE * abs(recorded)


def compare(recorded: dict[str, Any], measured: dict[str, float]) -> list[tuple[str, float, float, bool]]:
    rows = []
    for key, value in measured.items():
        if isinstance(recorded.get(key), (int, float)):
            rows.append((key, float(recorded[key]), value, abs(value - recorded[key]) <= tolerance(recorded[key])))
    return rows


def verify(name: str, args: argparse.Namespace) -> tuple[str, list[str]]:
    """``(status, table rows)`` for one entry: ok, MISMATCH, skipped or measured."""
    info = zoo.model_info(name)
    metrics, dataset, split = info["metrics"], info["dataset"], info["metrics"].get("split")
    if split is None:  # e.g. Hub checkpoints whose numbers were never measured on this project's machines
        return "skipped", [f"{name:34s} skipped: its registry entry records no measured metric to re-measure"]
    try:
        raw = load_dataset(dataset, split, args.data)
    except zoo.DatasetError as exc:
        return "skipped", [f"{name:34s} {dataset}/{split}: skipped, dataset missing ({exc})"]
    model = zoo.load(name, device=args.device)
    data = model.prepare_dataset(raw, train=False)
    started = time.time()
    result = evaluate(model, data, batch_size=args.batch_size, limit=args.limit, progress=args.progress)
    took = time.time() - started
    if args.limit is None:
        reference = metrics
        if metrics.get("examples") not in (None, result["examples"]):
            return "MISMATCH", [f"{name:34s} {dataset}/{split}: {result['examples']} examples, the registry says {metrics['examples']}"]
    elif metrics.get("check", {}).get("examples") == result["examples"]:
        reference = metrics["check"]
    else:
        reference = {}
    rows = compare(reference, {**measured_figures(model.modality, result), "nll_nats": result["nll_nats"]})
    status = "measured" if not rows else "ok" if all(ok for *_, ok in rows) else "MISMATCH"
    lines = [f"{name:34s} {dataset}/{split} [{result['examples']:,} examples, {took:.0f} s]: {status}"]
    for key, want, got, ok in rows:
        lines.append(f"    {key:16s} registry {want:<14.6g} measured {got:<14.6g} |diff| {abs(got - want):.2e} "
                     f"(tolerance {tolerance(want):.1e}) {'ok' if ok else 'MISMATCH'}")
    if not rows:
        shown = ", ".join(f"{k} {v:.6g}" for k, v in measured_figures(model.modality, result).items())
        lines.append(f"    {shown} (no registry value for the first {result['examples']} examples to compare with)")
    return status, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="entries to verify (default: every published one)")
    p.add_argument("--data", default=None, help="data root (default: $ZOO_DATA, else ../shared/data beside the checkout)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=None, help="score only the first N examples of each split")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    names = args.names or zoo.list_models(pretrained=True)
    counts: dict[str, int] = {}
    for name in names:
        try:
            status, lines = verify(name, args)
        except zoo.ZooError as exc:  # an entry that does not load or score is a failure too, reported with the rest
            status, lines = "ERROR", [f"{name:34s} ERROR {type(exc).__name__}: {exc}"]
        counts[status] = counts.get(status, 0) + 1
        print("\n".join(lines), flush=True)
    print("summary: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 1 if counts.get("MISMATCH") or counts.get("ERROR") else 0


if __name__ == "__main__":
    sys.exit(main())
