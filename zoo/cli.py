"""The ``zoo`` command line: a parser and a table of handlers.

``zoo --help``, ``zoo list`` and ``zoo info`` read the catalogue data only; torch, the families and
huggingface_hub are imported (from :mod:`zoo.commands`) only by the commands that use a model.
Every user error exits with status 2 and one line on stderr, before any long work starts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .errors import ZooError
from .registry import list_models, model_info

__all__ = ["DTYPE_CHOICES", "HANDLERS", "main"]

DTYPE_CHOICES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line (``zoo sample: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _positive_real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zoo", description="Pretrained autoregressive generative models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("list", help="list model names")
    s.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'pixelcnn*'")
    s.add_argument("--modality", choices=["image", "audio", "text"])
    s.add_argument("--family")
    s.add_argument("--pretrained", action="store_true", help="only names with published weights")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("info", help="show a model's registry entry and metrics")
    s.add_argument("name")

    def device_arg(s: argparse.ArgumentParser) -> None:
        s.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)")

    def model_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("name", help="registry name, local-dir:PATH or hf-hub:ORG/REPO[@REV]")
        device_arg(s)
        s.add_argument("--dtype", choices=DTYPE_CHOICES, default="float32")

    def sampling_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--seed", type=_count(0), default=None)
        s.add_argument("--temperature", type=_positive_real, default=1.0)
        s.add_argument("--condition", "--speaker", dest="condition", help="class/speaker name or id (conditional models)")
        s.add_argument("-o", "--output", help="output file: .png grid for images (required), .txt for text (default: print), "
                       ".wav/.flac for audio (required; -n > 1 adds _0, _1, ... to the name)")
        s.add_argument("--seconds", type=_positive_real, default=1.0, help="audio: seconds to generate")
        s.add_argument("--spectrogram", metavar="PNG", help="audio: also write the log-magnitude spectrogram of the (first) clip")
        s.add_argument("--max-new-chars", type=_count(1), default=200, help="text: characters to generate")
        s.add_argument("--top-k", type=_count(1), help="text: sample among the k most likely characters")
        s.add_argument("--top-p", type=float, help="text: nucleus sampling mass")
        s.add_argument("--stop", help="text: stop a sample once it ends with this string")

    s = sub.add_parser("sample", help="draw samples: an image grid, texts, or audio files")
    model_args(s)
    s.add_argument("-n", type=_count(1), default=None, help="number of samples (default: 16 images or texts, 1 audio clip)")
    sampling_args(s)

    s = sub.add_parser("complete", help="finish an image from its top rows, continue a text prompt or an audio prefix")
    model_args(s)
    s.add_argument("--input", help="image models: an image of the model's size; audio models: a .wav/.flac prefix")
    s.add_argument("--rows", type=_count(0), help="image models: rows kept from the input")
    s.add_argument("--prompt", help="text models: the text to continue")
    s.add_argument("-n", type=_count(1), default=1, help="completions per input")
    s.add_argument("--binarize", action="store_true", help="threshold grey levels at 128 for binary models")
    sampling_args(s)

    s = sub.add_parser("score", help="exact log-likelihood of files or text (nats and bits/dim)")
    model_args(s)
    s.add_argument("--input", nargs="+", default=[], help="image files of the model's size, text files, or .wav/.flac files")
    s.add_argument("--text", help="text models: a string to score")
    s.add_argument("--binarize", action="store_true", help="threshold grey levels at 128 for binary models")
    s.add_argument("--condition", "--speaker", dest="condition", help="class/speaker name or id (conditional models)")

    s = sub.add_parser("eval", help="exact NLL of a dataset split (the numbers in model cards)")
    model_args(s)
    s.add_argument("--dataset", help="dataset name (default: the entry's)")
    s.add_argument("--data", help="data root folder (default: $ZOO_DATA or ../shared/data)")
    s.add_argument("--split", default="test")
    s.add_argument("--limit", type=_count(1), help="first N examples only")
    s.add_argument("--batch-size", type=_count(1), default=250)
    s.add_argument("-o", "--output", help="also write the JSON result here")

    s = sub.add_parser("train", help="run a checkpoint's training recipe")
    s.add_argument("name", nargs="?", help="registry name whose hub_configs/<name>/recipe.json to run")
    s.add_argument("--recipe", help="a recipe.json file instead of a registry name")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--output", required=True, help="run folder: state.pt, metrics.jsonl, best/, last/")
    s.add_argument("--data", help="data root folder")
    s.add_argument("--resume", action="store_true", help="continue from OUTPUT/state.pt")
    device_arg(s)

    s = sub.add_parser("publish", help="validate a checkpoint folder and upload it to the Hugging Face Hub")
    s.add_argument("folder", help="a checkpoint folder (config.json, model.safetensors, README.md)")
    s.add_argument("--repo-id", required=True)
    s.add_argument("--revision", help="branch to commit to (default: main)")
    s.add_argument("--private", action="store_true")
    s.add_argument("--token", help="Hub token (default: the logged-in one)")
    s.add_argument("--message", help="commit message")
    s.add_argument("--dry-run", action="store_true", help="validate and print the registry entry, upload nothing")

    s = sub.add_parser("cache", help="list, verify or remove cached Hub checkpoints (registry entries and hf-hub: repos)")
    s.add_argument("action", choices=["ls", "verify", "rm"])
    s.add_argument("name", nargs="?", help="entry (or hf-hub:ORG/REPO) to remove (rm)")
    s.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE)")
    return p


def _list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, modality=args.modality, family=args.family, pretrained=True if args.pretrained else None)
    if args.json:
        print(json.dumps(names))
        return 0
    for name in names:
        info = model_info(name, derived=False)
        metric = ", ".join(f"{k}={v}" for k, v in info["metrics"].items() if not isinstance(v, dict))
        print(f"{name:32s} {info['family']:16s} {info['modality'] or '?':6s} {info['status']:12s} {metric}")
    return 0


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(model_info(args.name, derived=False), indent=2, default=str))
    return 0


def _heavy(name: str) -> Callable[[argparse.Namespace], int]:
    """A handler of :mod:`zoo.commands`, imported (with torch) only when its command runs."""
    return lambda args: getattr(importlib.import_module("zoo.commands"), name)(args)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": _list,
    "info": _info,
    **{command: _heavy(command) for command in ("sample", "complete", "score", "eval", "cache")},
    "train": _heavy("train_command"),
    "publish": _heavy("publish_command"),
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return HANDLERS[args.command](args)
    except ZooError as exc:
        print(f"zoo {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun, leave the process group before exiting: left to interpreter teardown, its
    communication threads can abort the process ("terminate called without an active exception")."""
    dist: Any = sys.modules.get("torch.distributed")  # never imported here just to ask
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
