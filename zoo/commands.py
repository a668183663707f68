"""The model commands of the ``zoo`` CLI (imported by :mod:`zoo.cli` only when one runs; they need torch).

Every argument is checked before the model samples or scores anything: output folders and suffixes,
the device, input image sizes (read from the file header, so a decompression bomb is never decoded).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .audio import AUDIO_SUFFIXES, read_audio, write_audio, write_spectrogram
from .datasets import load_dataset
from .errors import ConfigError, InvalidInputError, UnknownModelError
from .hub import cached_entries, load, parse_device, remove_cached
from .image import IMAGE_SUFFIXES, read_images, write_grid
from .publishing import publish
from .recipe import Recipe
from .registry import data_dir, model_info, resolve_entry
from .text import read_text
from .train import evaluate, train

__all__ = ["cache", "complete", "eval", "publish_command", "sample", "score", "train_command"]

TEXT_SUFFIXES = (".txt", ".md", ".text")
OUTPUT_SUFFIXES = {"image": (".png", ".jpg", ".jpeg", ".bmp", ".webp"), "audio": AUDIO_SUFFIXES, "text": TEXT_SUFFIXES}
MAX_PIXELS = 1 << 24  # no input image this large is ever decoded (every model is far smaller)


def _device(args: argparse.Namespace) -> torch.device:
    if args.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return parse_device(args.device)


def _check_output_folder(path: str | None, what: str) -> None:
    if path is None:
        return
    folder = Path(path).expanduser().parent
    if not folder.is_dir():
        raise InvalidInputError(f"{what} {path}: folder {folder} does not exist (create it first)")
    if Path(path).is_dir():
        raise InvalidInputError(f"{what} {path} is a folder; give a file name")


def _check_suffix(path: str | None, modality: str, what: str = "-o") -> None:
    if path is not None and Path(path).suffix.lower() not in OUTPUT_SUFFIXES[modality]:
        raise InvalidInputError(f"{what} {path}: {modality} models write {'/'.join(OUTPUT_SUFFIXES[modality])} files")


def _modality_of(name: str) -> str | None:
    try:
        return None if name.startswith(("local-dir:", "hf-hub:")) else model_info(name, derived=False)["modality"]
    except UnknownModelError:
        return None  # zoo.load says what the name looks like (a path, a repo id)


def _prepare(args: argparse.Namespace) -> Any:
    """Every check that needs no model, then the model (loading is quick; sampling is what takes long)."""
    device = _device(args)
    _check_output_folder(getattr(args, "output", None), "-o")
    _check_output_folder(getattr(args, "spectrogram", None), "--spectrogram")
    modality = _modality_of(args.name)  # registry names: suffixes checked before loading anything
    if modality is not None and args.command != "eval":
        _check_suffix(getattr(args, "output", None), modality)
    model = load(args.name, device=device, dtype=args.dtype)
    if args.command != "eval":
        _check_suffix(getattr(args, "output", None), model.modality)
    if getattr(args, "spectrogram", None) is not None:
        if model.modality != "audio":
            raise InvalidInputError(f"--spectrogram is for audio models; {args.name} is a {model.modality} model")
        _check_suffix(args.spectrogram, "image", "--spectrogram")
    args.device = device
    return model


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def _condition(value: str | None) -> Any:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _image_headers(paths: list[str], model: Any) -> None:
    """Sizes from the file headers: refuse what does not fit before decoding (a 20000x20000 PNG is 1.2 GB)."""
    for path in paths:
        if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            raise InvalidInputError(f"{path}: not an image file (accepted: {', '.join(IMAGE_SUFFIXES)})")
        if not Path(path).is_file():
            raise InvalidInputError(f"{path}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    width, height = im.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidInputError(f"{path}: refused without decoding, too many pixels ({exc})") from None
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read image ({exc})") from None
        if width * height > MAX_PIXELS or (height, width) != (model.space.height, model.space.width):
            raise InvalidInputError(f"{path} is {width}x{height}; this model takes {model.space.width}x{model.space.height} images")


def sample(args: argparse.Namespace) -> int:
    model = _prepare(args)
    if args.command == "sample" and args.n is None:
        args.n = 1 if model.modality == "audio" else 16
    return _run(args, model)


complete = score = sample


def _run(args: argparse.Namespace, model: Any) -> int:
    return MODALITY_COMMANDS[model.modality](args, model)


def _image_command(args: argparse.Namespace, model: Any) -> int:
    generator = _generator(getattr(args, "seed", None), args.device)
    if args.command in ("sample", "complete") and not args.output:
        raise InvalidInputError("image models write a PNG grid: pass -o FILE.png")
    if args.command == "sample":
        images = model.sample(args.n, condition=_condition(args.condition), temperature=args.temperature, generator=generator)
        write_grid(images, model, args.output)
        print(f"wrote {args.n} samples to {args.output}")
    elif args.command == "complete":
        if args.input is None or args.rows is None:
            raise InvalidInputError("image models complete an image: pass --input IMAGE and --rows K")
        _image_headers([args.input], model)
        x = read_images([args.input], model, args.binarize).repeat(args.n, 1, 1, 1).to(args.device)
        images = model.complete(x, rows=args.rows, condition=_condition(args.condition), temperature=args.temperature,
                                generator=generator)
        write_grid(torch.cat([x[:1].to(images), images]), model, args.output, nrow=args.n + 1)
        print(f"wrote the input and {args.n} completion(s) of its first {args.rows} rows to {args.output}")
    else:
        if not args.input:
            raise InvalidInputError("pass --input FILES (images of the model's size)")
        _image_headers(args.input, model)
        x = read_images(args.input, model, args.binarize).to(args.device)
        lp = model.log_prob(x, condition=_condition(args.condition))
        dims = model.dims(x)
        for path, value in zip(args.input, lp.tolist(), strict=True):
            print(f"{path}\t{-value:.4f} nats\t{-value / dims / math.log(2):.5f} bits/dim")
    return 0


def _text_command(args: argparse.Namespace, model: Any) -> int:
    condition = _condition(args.condition)
    if args.command == "score":
        texts = ([args.text] if args.text is not None else []) + [read_text(p) for p in args.input]
        names = (["--text"] if args.text is not None else []) + list(args.input)
        if not texts:
            raise InvalidInputError("pass --text STRING or --input FILES")
        lp = model.log_prob(texts, condition=condition)
        for name, text, value in zip(names, texts, lp.tolist(), strict=True):
            chars = max(1, len(text))
            print(f"{name}\t{-value:.4f} nats\t{-value / chars:.5f} nats/char\t{-value / chars / math.log(2):.5f} bits/char")
        return 0
    options = dict(max_new_chars=args.max_new_chars, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   stop=args.stop, generator=_generator(args.seed, args.device))
    if condition is not None:
        options["condition"] = condition
    if args.command == "sample":
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
        clips = [_read_clip(path, model) for path in args.input]
        lp = model.log_prob(clips, condition=_condition(args.condition))
        for path, clip, value in zip(args.input, clips, lp.tolist(), strict=True):
            print(f"{path}\t{-value:.2f} nats\t{-value / len(clip) / math.log(2):.5f} bits/sample\t{len(clip)} samples")
        return 0
    if not args.output:
        raise InvalidInputError("audio models write sound files: pass -o FILE.wav (or .flac)")
    options = dict(seconds=args.seconds, condition=_condition(args.condition), temperature=args.temperature,
                   generator=_generator(args.seed, args.device))
    if args.command == "sample":
        clips = model.sample(args.n, **options)
    else:
        if args.input is None:
            raise InvalidInputError("audio models continue a recording: pass --input PREFIX.wav")
        clips = model.complete(_read_clip(args.input, model)[None].repeat(args.n, 1).to(args.device), **options)
    out = Path(args.output)
    paths = [out] if len(clips) == 1 else [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(len(clips))]
    for path, clip in zip(paths, clips, strict=True):
        write_audio(path, clip.cpu(), model.sample_rate)
    if args.spectrogram:
        write_spectrogram(clips[0].cpu(), model.sample_rate, args.spectrogram)
    what = "sample(s)" if args.command == "sample" else f"completion(s) of {args.input}"
    print(f"wrote {len(clips)} {what} of {clips.shape[1] / model.sample_rate:.2f} s at {model.sample_rate} Hz to "
          f"{', '.join(map(str, paths))}" + (f"; spectrogram {args.spectrogram}" if args.spectrogram else ""))
    return 0


def _read_clip(path: str, model: Any) -> torch.Tensor:
    """A mono file at the model's rate; other rates are resampled (the file says its rate, so this is safe)."""
    wave, rate = read_audio(path)
    if wave.shape[0] != 1:
        raise InvalidInputError(f"{path} has {wave.shape[0]} channels; this model takes mono audio (mix it down first)")
    return model.space.validate(wave, name=path, sample_rate=rate, resample=True)[0]


def _is_rank0() -> bool:
    """Under torchrun only rank 0 reports, so results are printed and written once."""
    return os.environ.get("RANK", "0") == "0"


def eval(args: argparse.Namespace) -> int:  # noqa: A001 - the command's name
    model = _prepare(args)
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


def train_command(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.recipe is None):
        raise InvalidInputError("give either a registry NAME or --recipe FILE")
    path = Path(args.recipe) if args.recipe else data_dir("hub_configs") / resolve_entry(args.name).name / "recipe.json"
    if not path.is_file():
        raise InvalidInputError(f"recipe {path} not found")
    overrides = list(args.overrides)
    if args.device is not None:
        parse_device(args.device)
        overrides.append(f"device={args.device}")
    try:  # the recipe and its config are validated here, before any data is read or step taken
        recipe = Recipe.load(path).with_overrides(overrides)
        recipe.build_model()
    except (ConfigError, InvalidInputError):
        raise
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path}: {exc}") from None
    result = train(recipe, args.output, data_root=args.data, resume=args.resume)
    if _is_rank0():
        print(json.dumps(result, indent=2))
    return 0


def publish_command(args: argparse.Namespace) -> int:
    result = publish(args.folder, args.repo_id, revision=args.revision, private=args.private, token=args.token,
                     commit_message=args.message, dry_run=args.dry_run)
    print("dry run: nothing uploaded" if args.dry_run else f"uploaded {args.folder} to {args.repo_id} at commit {result['revision']}")
    print("registry entry fields:")
    print(json.dumps({k: v for k, v in result.items() if k != "folder"}, indent=2))
    return 0


def cache(args: argparse.Namespace) -> int:
    if args.action == "rm":
        if not args.name:
            raise InvalidInputError("zoo cache rm needs the NAME of a registry entry (or hf-hub:ORG/REPO)")
        freed = remove_cached(args.name, args.cache_dir)
        print(f"removed the cached revisions of {args.name} ({freed / 1e6:.1f} MB)" if freed else f"nothing cached for {args.name}")
        return 0
    rows = cached_entries(args.cache_dir)
    for row in rows:
        state = {True: "ok", False: f"MISMATCH {', '.join(row['bad'])}", None: "unverified"}[row["verified"]]
        if args.action == "ls" or row["verified"] is not None:
            print(f"{row['name']:32s} {row['revision'][:12]} {row['size_bytes'] / 1e6:8.1f} MB  {state}  {row['path']}")
    if not rows:
        print("no zoo checkpoint is cached")
    bad = sum(row["verified"] is False for row in rows)
    if bad:
        print(f"{bad} cached revision(s) do not match their hashes; remove them with `zoo cache rm NAME`", file=sys.stderr)
        return 1
    return 0


# sample / complete / score per modality; each calls its modality module's file I/O
MODALITY_COMMANDS = {"image": _image_command, "audio": _audio_command, "text": _text_command}
