"""The ``zoo`` command line: list, info, sample, complete, score, eval, train."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .audio import read_audio, write_audio, write_spectrogram
from .errors import InvalidInputError, ZooError
from .image import read_images, write_grid
from .text import read_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="Pretrained autoregressive generative models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list model names")
    s.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'pixelcnn*'")
    s.add_argument("--modality", choices=["image", "audio", "text"])
    s.add_argument("--family")
    s.add_argument("--pretrained", action="store_true", help="only names with published weights")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("info", help="show a model's registry entry and metrics")
    s.add_argument("name")

    def model_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("name", help="registry name, local-dir:PATH or hf-hub:ORG/REPO[@REV]")
        s.add_argument("--device", default="cpu")
        s.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")

    def sampling_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--seed", type=int, default=None)
        s.add_argument("--temperature", type=float, default=1.0)
        s.add_argument("--condition", "--speaker", dest="condition", help="class/speaker name or id (conditional models)")
        s.add_argument("-o", "--output", help="output file: .png grid for images (required), .txt for text (default: print), "
                       ".wav/.flac for audio (required; -n > 1 adds _0, _1, ... to the name)")
        s.add_argument("--seconds", type=float, default=1.0, help="audio: seconds to generate")
        s.add_argument("--spectrogram", metavar="PNG", help="audio: also write the log-magnitude spectrogram of the (first) clip")
        s.add_argument("--max-new-chars", type=int, default=200, help="text: characters to generate")
        s.add_argument("--top-k", type=int, help="text: sample among the k most likely characters")
        s.add_argument("--top-p", type=float, help="text: nucleus sampling mass")
        s.add_argument("--stop", help="text: stop a sample once it ends with this string")

    s = sub.add_parser("sample", help="draw samples: an image grid, texts, or audio files")
    model_args(s)
    s.add_argument("-n", type=int, default=None, help="number of samples (default: 16 images or texts, 1 audio clip)")
    sampling_args(s)

    s = sub.add_parser("complete", help="finish an image from its top rows, continue a text prompt or an audio prefix")
    model_args(s)
    s.add_argument("--input", help="image models: an image of the model's size; audio models: a .wav/.flac prefix")
    s.add_argument("--rows", type=int, help="image models: rows kept from the input")
    s.add_argument("--prompt", help="text models: the text to continue")
    s.add_argument("-n", type=int, default=1, help="completions per input")
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
    s.add_argument("--limit", type=int, help="first N examples only")
    s.add_argument("--batch-size", type=int, default=250)
    s.add_argument("-o", "--output", help="also write the JSON result here")

    s = sub.add_parser("train", help="run a checkpoint's training recipe")
    s.add_argument("name", nargs="?", help="registry name whose hub_configs/<name>/recipe.json to run")
    s.add_argument("--recipe", help="a recipe.json file instead of a registry name")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--output", required=True, help="run folder: state.pt, metrics.jsonl, best/, last/")
    s.add_argument("--data", help="data root folder")
    s.add_argument("--resume", action="store_true", help="continue from OUTPUT/state.pt")

    s = sub.add_parser("publish", help="validate a checkpoint folder and upload it to the Hugging Face Hub")
    s.add_argument("folder", help="a checkpoint folder (config.json, model.safetensors, README.md)")
    s.add_argument("--repo-id", required=True)
    s.add_argument("--revision", help="branch to commit to (default: main)")
    s.add_argument("--private", action="store_true")
    s.add_argument("--token", help="Hub token (default: the logged-in one)")
    s.add_argument("--message", help="commit message")
    s.add_argument("--dry-run", action="store_true", help="validate and print the registry entry, upload nothing")

    s = sub.add_parser("cache", help="list, verify or remove cached Hub checkpoints of registry entries")
    s.add_argument("action", choices=["ls", "verify", "rm"])
    s.add_argument("name", nargs="?", help="entry to remove (rm)")
    s.add_argument("--cache-dir", help="Hugging Face cache folder (default: HF_HUB_CACHE)")
    return p


def _load(args: argparse.Namespace) -> Any:
    from .hub import load

    return load(args.name, device=args.device, dtype=getattr(torch, args.dtype))


def _generator(seed: int | None, device: str) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def _condition(value: str | None) -> Any:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ZooError as exc:
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun, leave the process group before exiting: left to interpreter teardown, its
    communication threads can abort the process ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _run(args: argparse.Namespace) -> int:
    from . import registry

    if args.command == "list":
        names = registry.list_models(args.pattern, modality=args.modality, family=args.family,
                                     pretrained=True if args.pretrained else None)
        if args.json:
            print(json.dumps(names))
        for name in [] if args.json else names:
            info = registry.model_info(name)
            metric = ", ".join(f"{k}={v}" for k, v in info["metrics"].items() if not isinstance(v, dict))
            print(f"{name:32s} {info['family']:14s} {info['modality']:6s} {info['status']:12s} {metric}")
        return 0
    if args.command == "info":
        print(json.dumps(registry.model_info(args.name), indent=2, default=str))
        return 0
    if args.command == "train":
        return _train(args)
    if args.command == "publish":
        from .hub import publish

        result = publish(args.folder, args.repo_id, revision=args.revision, private=args.private, token=args.token,
                         commit_message=args.message, dry_run=args.dry_run)
        print("dry run: nothing uploaded" if args.dry_run else f"uploaded {args.folder} to {args.repo_id} at commit {result['revision']}")
        print("registry entry fields:")
        print(json.dumps({k: v for k, v in result.items() if k != "folder"}, indent=2))
        return 0
    if args.command == "cache":
        return _cache(args)
    model = _load(args)
    if args.command == "sample" and args.n is None:
        args.n = 1 if model.modality == "audio" else 16
    if args.command == "eval":
        return _eval(args, model)
    if model.modality == "text":
        return _text_command(args, model)
    if model.modality == "audio":
        return _audio_command(args, model)
    return _image_command(args, model)


def _image_command(args: argparse.Namespace, model: Any) -> int:
    generator = _generator(getattr(args, "seed", None), args.device)
    if args.command in ("sample", "complete") and not args.output:
        raise InvalidInputError("image models write a PNG grid: pass -o FILE.png")
    if args.command == "sample":
        if args.n < 1:
            raise InvalidInputError(f"-n must be >= 1, got {args.n}")
        images = model.sample(args.n, condition=_condition(args.condition), temperature=args.temperature, generator=generator)
        write_grid(images, model, args.output)
        print(f"wrote {args.n} samples to {args.output}")
    elif args.command == "complete":
        if args.input is None or args.rows is None:
            raise InvalidInputError("image models complete an image: pass --input IMAGE and --rows K")
        x = read_images([args.input], model, args.binarize).repeat(args.n, 1, 1, 1)
        images = model.complete(x, rows=args.rows, condition=_condition(args.condition), temperature=args.temperature,
                                generator=generator)
        write_grid(torch.cat([x[:1].to(images), images]), model, args.output, nrow=args.n + 1)
        print(f"wrote the input and {args.n} completion(s) of its first {args.rows} rows to {args.output}")
    elif args.command == "score":
        if not args.input:
            raise InvalidInputError("pass --input FILES (images of the model's size)")
        x = read_images(args.input, model, args.binarize)
        lp = model.log_prob(x, condition=_condition(args.condition))
        dims = model.dims(x)
        for path, value in zip(args.input, lp.tolist(), strict=True):
            print(f"{path}\t{-value:.4f} nats\t{-value / dims / math.log(2):.5f} bits/dim")
    return 0


def _text_command(args: argparse.Namespace, model: Any) -> int:
    if args.command == "score":
        texts = ([args.text] if args.text is not None else []) + [read_text(p) for p in args.input]
        names = (["--text"] if args.text is not None else []) + list(args.input)
        if not texts:
            raise InvalidInputError("pass --text STRING or --input FILES")
        lp = model.log_prob(texts)
        for name, text, value in zip(names, texts, lp.tolist(), strict=True):
            chars = max(1, len(text))
            print(f"{name}\t{-value:.4f} nats\t{-value / chars:.5f} nats/char\t{-value / chars / math.log(2):.5f} bits/char")
        return 0
    options = dict(max_new_chars=args.max_new_chars, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   stop=args.stop, generator=_generator(args.seed, args.device))
    if args.command == "sample":
        if args.n < 1:
            raise InvalidInputError(f"-n must be >= 1, got {args.n}")
        texts = model.sample(args.n, **options)
    else:
        if args.prompt is None:
            raise InvalidInputError("text models continue a prompt: pass --prompt TEXT")
        texts = model.complete([args.prompt] * args.n, **options)
    output = "\n\n".join(texts) + "\n"
    if args.output:
        Path(args.output).write_text(output, encoding="utf-8")
        print(f"wrote {len(texts)} text(s) to {args.output}")
    else:
        sys.stdout.write(output)
    return 0


def _audio_command(args: argparse.Namespace, model: Any) -> int:
    if args.command == "score":
        if not args.input:
            raise InvalidInputError("pass --input FILES (.wav or .flac)")
        clips = [_read_clip(path, model, read_audio) for path in args.input]
        lp = model.log_prob(clips, condition=_condition(args.condition))
        for path, clip, value in zip(args.input, clips, lp.tolist(), strict=True):
            print(f"{path}\t{-value:.2f} nats\t{-value / len(clip) / math.log(2):.5f} bits/sample\t{len(clip)} samples")
        return 0
    if not args.output:
        raise InvalidInputError("audio models write sound files: pass -o FILE.wav (or .flac)")
    options = dict(seconds=args.seconds, condition=_condition(args.condition), temperature=args.temperature,
                   generator=_generator(args.seed, args.device))
    if args.command == "sample":
        if args.n < 1:
            raise InvalidInputError(f"-n must be >= 1, got {args.n}")
        clips = model.sample(args.n, **options)
    else:
        if args.input is None:
            raise InvalidInputError("audio models continue a recording: pass --input PREFIX.wav")
        clips = model.complete(_read_clip(args.input, model, read_audio)[None].repeat(args.n, 1), **options)
    out = Path(args.output)
    paths = [out] if len(clips) == 1 else [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(len(clips))]
    for path, clip in zip(paths, clips, strict=True):
        write_audio(path, clip, model.sample_rate)
    if args.spectrogram:
        write_spectrogram(clips[0], model.sample_rate, args.spectrogram)
    what = "sample(s)" if args.command == "sample" else f"completion(s) of {args.input}"
    print(f"wrote {len(clips)} {what} of {clips.shape[1] / model.sample_rate:.2f} s at {model.sample_rate} Hz to "
          f"{', '.join(map(str, paths))}" + (f"; spectrogram {args.spectrogram}" if args.spectrogram else ""))
    return 0


def _read_clip(path: str, model: Any, read_audio: Any) -> torch.Tensor:
    """A mono file at the model's rate; other rates are resampled (the file says its rate, so this is safe)."""
    wave, rate = read_audio(path)
    if wave.shape[0] != 1:
        raise InvalidInputError(f"{path} has {wave.shape[0]} channels; this model takes mono audio (mix it down first)")
    return model.space.validate(wave, name=path, sample_rate=rate, resample=True)[0]


def _eval(args: argparse.Namespace, model: Any) -> int:
    from .datasets import load_dataset
    from .train import evaluate

    dataset = args.dataset or (model.entry.dataset if model.entry is not None else None)
    if dataset is None:
        raise InvalidInputError("this model has no registry entry naming its dataset; pass --dataset")
    data = model.prepare_dataset(load_dataset(dataset, args.split, args.data), train=False)
    result = {"model": args.name, "dataset": dataset, "split": args.split,
              **evaluate(model, data, batch_size=args.batch_size, limit=args.limit)}
    if _is_rank0():
        text = json.dumps(result, indent=2)
        print(text)
        if args.output:
            Path(args.output).write_text(text + "\n")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from .hub import cached_entries, remove_cached

    if args.action == "rm":
        if not args.name:
            raise InvalidInputError("zoo cache rm needs the NAME of a registry entry")
        freed = remove_cached(args.name, args.cache_dir)
        print(f"removed the cached revisions of {args.name} ({freed / 1e6:.1f} MB)" if freed else f"nothing cached for {args.name}")
        return 0
    rows = cached_entries(args.cache_dir)
    bad = 0
    for row in rows:
        state = {True: "ok", False: "SHA256 MISMATCH", None: "unverified"}[row["verified"]]
        bad += row["verified"] is False
        if args.action == "ls" or row["verified"] is not None:
            print(f"{row['name']:32s} {row['revision'][:12]} {row['size_bytes'] / 1e6:8.1f} MB  {state}  {row['path']}")
    if not rows:
        print("no registry entry is cached")
    if bad:
        print(f"{bad} cached file(s) do not match their registry sha256; remove them with `zoo cache rm NAME`", file=sys.stderr)
        return 1
    return 0


def _is_rank0() -> bool:
    """Under torchrun only rank 0 reports, so results are printed and written once."""
    return os.environ.get("RANK", "0") == "0"


def _train(args: argparse.Namespace) -> int:
    from .registry import data_dir, resolve_entry
    from .train import Recipe, train

    if (args.name is None) == (args.recipe is None):
        raise InvalidInputError("give either a registry NAME or --recipe FILE")
    if args.recipe:
        path = Path(args.recipe)
    else:
        entry = resolve_entry(args.name)
        path = data_dir("hub_configs") / entry.name / "recipe.json"
    if not path.is_file():
        raise InvalidInputError(f"recipe {path} not found")
    recipe = Recipe.load(path).with_overrides(args.overrides)
    result = train(recipe, args.output, data_root=args.data, resume=args.resume)
    if _is_rank0():
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
