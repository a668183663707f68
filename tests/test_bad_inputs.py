"""Bad inputs, table-driven: every one is a ZooError naming the bad value (API) or exit 2 with one line (CLI),
and none writes or deletes anything.

The tiny models live in one module-scoped folder; each case snapshots that folder (every path, size and
mtime) before and after. The cases marked ``contract: lead`` concern the model classes' argument checks.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main

from .helpers import randomized

CONTRACT = "contract: lead"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    models = {
        "image": randomized(zoo.build("pixelcnn", "tiny")),
        "cond": randomized(zoo.build("gated-pixelcnn", "tiny", labels=["zero", "one", "two"])),
        "text": randomized(zoo.build("char-transformer", "tiny")),
        "audio": randomized(zoo.build("wavenet", "tiny")),
    }
    for name, model in models.items():
        model.save_pretrained(root / name)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "good.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(root / "big.png")
    bomb = Image.new("1", (20000, 20000))  # 50 MB as 1-bit, a 400-megapixel decode
    bomb.save(root / "bomb.png", optimize=False)
    (root / "notjson.txt").write_text("this is not json")
    (root / "latin1.txt").write_bytes(b"caf\xe9")
    (root / "user").mkdir()
    (root / "user" / "thesis.tex").write_text("chapter 1")
    (root / "afile").write_text("keep")
    (root / "noperm").mkdir()
    os.chmod(root / "noperm", 0o500)
    yield root, models
    os.chmod(root / "noperm", 0o700)


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if not p.is_symlink())


def xfail_contract(case):
    return pytest.param(*case, marks=pytest.mark.xfail(strict=True, reason=CONTRACT), id=case[0])


# --------------------------------------------------------------------------- API: (id, call, error, message)
IM, C, T, A = "image", "cond", "text", "audio"
x_img = lambda: (torch.rand(2, 1, 4, 4) > 0.5).to(torch.uint8)  # noqa: E731
API = [
    ("load-empty", lambda r, m: zoo.load(""), zoo.UnknownModelError, "empty model name ''"),
    ("load-spaces", lambda r, m: zoo.load("   "), zoo.UnknownModelError, "empty model name"),
    ("load-dot-path", lambda r, m: zoo.load("./my-model"), zoo.UnknownModelError, r"'./my-model' looks like a path.*local-dir:./my-model"),
    ("load-home-path", lambda r, m: zoo.load("~/my-model"), zoo.UnknownModelError, r"local-dir:~/my-model"),
    ("load-abs-path", lambda r, m: zoo.load(str(r / "image")), zoo.UnknownModelError, r"looks like a path.*local-dir:/"),
    ("load-repo-like", lambda r, m: zoo.load("org/repo"), zoo.UnknownModelError, r"hf-hub:org/repo"),
    ("load-not-str", lambda r, m: zoo.load(42), zoo.UnknownModelError, "must be a str, got int"),
    ("load-unknown", lambda r, m: zoo.load("pixelcnn-binarized-mnst"), zoo.UnknownModelError, "did you mean 'pixelcnn-binarized-mnist'"),
    ("load-local-empty", lambda r, m: zoo.load("local-dir:"), zoo.UnknownModelError, "local-dir: needs a folder path"),
    ("load-local-missing", lambda r, m: zoo.load(f"local-dir:{r}/absent"), zoo.CheckpointError, "absent has no config.json"),
    ("load-local-user-folder", lambda r, m: zoo.load(f"local-dir:{r}/user"), zoo.CheckpointError, "user has no config.json"),
    ("load-typo-kwarg", lambda r, m: zoo.load("pixelcnn-binarized-mnist", dtpye=torch.bfloat16), zoo.InvalidInputError,
     r"unknown keyword argument\(s\) \['dtpye'\]; accepted: \['pretrained', 'device', 'dtype'"),
    ("load-two-bad-kwargs", lambda r, m: zoo.load(f"local-dir:{r}/image", foo=1, bar=2), zoo.InvalidInputError, r"\['bar', 'foo'\]"),
    ("load-hub-kwarg-typo", lambda r, m: zoo.load("hf-hub:org/repo", cache=1), zoo.InvalidInputError, r"\['cache'\]"),
    ("load-pretrained-str", lambda r, m: zoo.load("pixelcnn-binarized-mnist", pretrained="no"), zoo.InvalidInputError,
     "pretrained must be True or False, got 'no'"),
    *[(f"load-dtype-{d}", lambda r, m, d=d: zoo.load(f"local-dir:{r}/image", dtype=d), zoo.InvalidInputError, f"dtype must be .*got {d!r}")
      for d in ("bfloat", "int8", "float8", "", "32")],
    ("load-dtype-int-torch", lambda r, m: zoo.load(f"local-dir:{r}/image", dtype=torch.int64), zoo.InvalidInputError, "got torch.int64"),
    ("load-dtype-number", lambda r, m: zoo.load(f"local-dir:{r}/image", dtype=16), zoo.InvalidInputError, "got 16"),
    *[(f"load-device-{d}", lambda r, m, d=d: zoo.load(f"local-dir:{r}/image", device=d), zoo.InvalidInputError, re.escape(repr(d)))
      for d in ("nonsense", "gpu", "cuda:x", "", "cpu:zero")],
    ("load-device-int", lambda r, m: zoo.load(f"local-dir:{r}/image", device=True), zoo.InvalidInputError, "got True"),
    *[(f"hf-hub-{i}", lambda r, m, s=s: zoo.load(f"hf-hub:{s}"), zoo.InvalidInputError, re.escape(repr(s)[:40]))
      for i, s in enumerate(["", "a/b/c", "../../etc/passwd", "org/re po", "/abs", "o/" + "x" * 198, "org/", "/repo", "org/repo@",
                             "org/repo@bad rev", "org--x/repo", "org/re..po", "-org/repo"])],
    ("build-unknown-family", lambda r, m: zoo.build("pixelcn"), zoo.UnknownModelError, "did you mean 'pixelcnn'"),
    ("build-unknown-preset", lambda r, m: zoo.build("pixelcnn", "huge"), zoo.ConfigError, "no preset 'huge'"),
    ("build-unknown-field", lambda r, m: zoo.build("pixelcnn", "tiny", depth=3), zoo.ConfigError, r"unknown pixelcnn config field\(s\) \['depth'\]"),
    ("build-even-kernel", lambda r, m: zoo.build("pixelcnn", "tiny", input_kernel=4), zoo.ConfigError, "input_kernel.*4"),
    ("build-negative-kernel", lambda r, m: zoo.build("pixelcnn", "tiny", input_kernel=-3), zoo.ConfigError, "input_kernel.*-3"),
    ("build-negative-height", lambda r, m: zoo.build("pixelcnn", "tiny", height=-4), zoo.ConfigError, "height.*-4"),
    ("build-repeated-vocab", lambda r, m: zoo.build("char-transformer", "tiny", vocab="aab"), zoo.ConfigError, "'aab'|repeat"),
    ("build-labels-str", lambda r, m: zoo.build("gated-pixelcnn", "tiny", labels="ab"), zoo.ConfigError, "labels.*'ab'"),
    ("info-unknown", lambda r, m: zoo.model_info("nope"), zoo.UnknownModelError, "unknown model 'nope'"),
    ("save-onto-file", lambda r, m: m[IM].save_pretrained(r / "afile"), zoo.CheckpointError, "afile exists and is not a folder"),
    ("save-onto-user-folder", lambda r, m: m[IM].save_pretrained(r / "user", overwrite=True), zoo.CheckpointError, r"thesis.tex.*never deletes"),
    ("save-onto-checkpoint", lambda r, m: m[IM].save_pretrained(r / "image"), zoo.CheckpointError,
     "already holds a zoo checkpoint; pass overwrite=True"),
    ("save-under-a-file", lambda r, m: m[IM].save_pretrained(r / "afile" / "ckpt"), zoo.CheckpointError, "cannot write a checkpoint at .*afile/ckpt"),
    ("save-unwritable", lambda r, m: m[IM].save_pretrained("/proc/zoo-ckpt"), zoo.CheckpointError, "cannot write a checkpoint at /proc/zoo-ckpt"),
    ("save-empty-path", lambda r, m: m[IM].save_pretrained(""), zoo.CheckpointError, "needs a folder path, got ''"),
    ("publish-bad-repo", lambda r, m: zoo.publish(r / "image", "me/bad repo", dry_run=True), zoo.InvalidInputError, "'me/bad repo' is not a valid"),
    ("publish-no-org", lambda r, m: zoo.publish(r / "image", "a/b/c", dry_run=True), zoo.InvalidInputError, "'a/b/c'"),
    ("publish-user-folder", lambda r, m: zoo.publish(r / "user", "me/x", dry_run=True), zoo.CheckpointError, "user has no config.json"),
    # the model contract (argument checks in contract.py / the modality modules)
    ("sample-zero", lambda r, m: m[IM].sample(0), zoo.InvalidInputError, "got 0"),
    ("sample-negative", lambda r, m: m[IM].sample(-2), zoo.InvalidInputError, "got -2"),
    ("sample-float", lambda r, m: m[IM].sample(2.5), zoo.InvalidInputError, "got 2.5"),
    ("sample-true", lambda r, m: m[IM].sample(True), zoo.InvalidInputError, "got True"),
    ("sample-huge", lambda r, m: m[IM].sample(10**12), zoo.InvalidInputError, "1000000000000"),
    ("sample-str", lambda r, m: m[IM].sample("4"), zoo.InvalidInputError, "got '4'"),
    ("temperature-hot", lambda r, m: m[IM].sample(1, temperature="hot"), zoo.InvalidInputError, "got 'hot'"),
    ("temperature-none", lambda r, m: m[IM].sample(1, temperature=None), zoo.InvalidInputError, "got None"),
    ("temperature-zero", lambda r, m: m[IM].sample(1, temperature=0), zoo.InvalidInputError, "got 0"),
    ("temperature-nan", lambda r, m: m[IM].sample(1, temperature=float("nan")), zoo.InvalidInputError, "got nan"),
    ("text-temperature-hot", lambda r, m: m[T].sample(1, max_new_chars=2, temperature="hot"), zoo.InvalidInputError, "got 'hot'"),
    ("audio-temperature-none", lambda r, m: m[A].sample(1, seconds=0.01, temperature=None), zoo.InvalidInputError, "got None"),
    ("condition-float", lambda r, m: m[C].sample(1, condition=3.7), zoo.InvalidInputError, "3.7"),
    ("condition-none-in-list", lambda r, m: m[C].sample(2, condition=[None, 1]), zoo.InvalidInputError, "None"),
    ("condition-bool", lambda r, m: m[C].sample(1, condition=True), zoo.InvalidInputError, "True"),
    ("condition-unknown-name", lambda r, m: m[C].sample(1, condition="seven"), zoo.InvalidInputError, "'seven'"),
    ("condition-id-range", lambda r, m: m[C].sample(1, condition=9), zoo.InvalidInputError, "9"),
    ("condition-on-unconditional", lambda r, m: m[IM].sample(1, condition="zero"), zoo.InvalidInputError, "'zero'|condition"),
    ("condition-on-text", lambda r, m: m[T].log_prob("ab", condition=1), zoo.InvalidInputError, "condition"),
    ("condition-length", lambda r, m: m[C].sample(2, condition=["zero", "one", "two"]), zoo.InvalidInputError, "3"),
    ("seconds-huge", lambda r, m: m[A].sample(1, seconds=1e9), zoo.InvalidInputError, "8,000,000,000,000|1e\\+09"),
    ("seconds-tiny", lambda r, m: m[A].sample(1, seconds=1e-9), zoo.InvalidInputError, "1e-09"),
    ("seconds-negative", lambda r, m: m[A].sample(1, seconds=-1), zoo.InvalidInputError, "-1"),
    ("seconds-str", lambda r, m: m[A].sample(1, seconds="1"), zoo.InvalidInputError, "'1'"),
    ("complete-none-text", lambda r, m: m[T].complete(None), zoo.InvalidInputError, "None"),
    ("complete-none-image", lambda r, m: m[IM].complete(None, rows=1), zoo.InvalidInputError, "None"),
    ("complete-rows-range", lambda r, m: m[IM].complete(x_img(), rows=9), zoo.InvalidInputError, "9"),
    ("complete-rows-negative", lambda r, m: m[IM].complete(x_img(), rows=-1), zoo.InvalidInputError, "-1"),
    ("complete-max-new-negative", lambda r, m: m[T].complete("ab", max_new_chars=-1), zoo.InvalidInputError, "-1"),
    ("text-unknown-chars", lambda r, m: m[T].log_prob("xyz"), zoo.InvalidInputError, "'xyz'"),
    ("text-not-str", lambda r, m: m[T].log_prob(42), zoo.InvalidInputError, "int|42"),
    ("text-top-k-zero", lambda r, m: m[T].sample(1, max_new_chars=2, top_k=0), zoo.InvalidInputError, "got 0"),
    ("text-top-p-two", lambda r, m: m[T].sample(1, max_new_chars=2, top_p=2), zoo.InvalidInputError, "got 2"),
    ("image-wrong-shape", lambda r, m: m[IM].log_prob(torch.zeros(2, 1, 5, 4, dtype=torch.uint8)), zoo.InvalidInputError, "5"),
    ("image-wrong-dtype", lambda r, m: m[IM].log_prob(torch.zeros(2, 1, 4, 4)), zoo.InvalidInputError, "float32|dtype"),
    ("image-out-of-range", lambda r, m: m[IM].log_prob(torch.full((2, 1, 4, 4), 7, dtype=torch.uint8)), zoo.InvalidInputError, "7|range"),
    ("image-list", lambda r, m: m[IM].log_prob([[0, 1]]), zoo.InvalidInputError, "list|tensor"),
    ("audio-out-of-range", lambda r, m: m[A].log_prob(torch.full((1, 100), 3.0)), zoo.InvalidInputError, "3|range|\\[-1, 1\\]"),
    ("audio-str", lambda r, m: m[A].log_prob("abc"), zoo.InvalidInputError, "str|'abc'"),
]
CONTRACT_CASES = set()


def _api_cases():
    return [pytest.param(*case, id=case[0]) if case[0] not in CONTRACT_CASES else xfail_contract(case) for case in API]


@pytest.mark.parametrize(("case", "call", "error", "message"), _api_cases())
def test_api_refuses(ws, case, call, error, message):
    root, models = ws
    before = snapshot(root)
    with pytest.raises(error) as info:
        call(root, models)
    assert isinstance(info.value, zoo.ZooError)
    assert re.search(message, str(info.value)), str(info.value)
    assert snapshot(root) == before


# --------------------------------------------------------------------------- CLI: (id, argv, message)
def _cli(case, *argv, message):
    return (case, list(argv), message)


CLI = [
    _cli("no-command", message="the following arguments are required: COMMAND"),
    _cli("unknown-command", "frobnicate", message="invalid choice: 'frobnicate'"),
    _cli("info-unknown", "info", "nope", message="unknown model 'nope'"),
    _cli("list-bad-modality", "list", "--modality", "smell", message="invalid choice: 'smell'"),
    _cli("sample-n-zero", "sample", "IMG", "-n", "0", "-o", "OUT/x.png", message="argument -n: must be >= 1, got 0"),
    _cli("sample-n-negative", "sample", "IMG", "-n", "-3", "-o", "OUT/x.png", message="-n.*-3"),
    _cli("sample-n-word", "sample", "IMG", "-n", "many", "-o", "OUT/x.png", message="'many'"),
    _cli("complete-n-zero", "complete", "IMG", "--input", "GOOD", "--rows", "2", "-n", "0", "-o", "OUT/x.png", message="-n: must be >= 1"),
    _cli("sample-missing-dir", "sample", "IMG", "-o", "OUT/missing_dir/o.png", message="folder .*missing_dir does not exist"),
    _cli("sample-txt-for-image", "sample", "IMG", "-o", "OUT/o.txt", message="image models write .png"),
    _cli("sample-wav-for-image", "sample", "IMG", "-o", "OUT/o.wav", message="o.wav: image models"),
    _cli("sample-no-output-image", "sample", "IMG", message="pass -o FILE.png"),
    _cli("sample-output-is-dir", "sample", "IMG", "-o", "OUT", message="is a folder"),
    _cli("text-missing-dir", "sample", "TXT", "-o", "OUT/missing_dir/o.txt", message="missing_dir does not exist"),
    _cli("text-png", "sample", "TXT", "-o", "OUT/o.png", message="text models write .txt"),
    _cli("audio-missing-dir", "sample", "AUD", "-o", "OUT/missing_dir/o.wav", message="missing_dir does not exist"),
    _cli("audio-txt", "sample", "AUD", "-o", "OUT/o.txt", message="audio models write .wav/.flac"),
    _cli("audio-no-output", "sample", "AUD", message="pass -o FILE.wav"),
    _cli("spectrogram-missing-dir", "sample", "AUD", "-o", "OUT/o.wav", "--spectrogram", "OUT/missing_dir/s.png",
         message="--spectrogram .*missing_dir"),
    _cli("spectrogram-suffix", "sample", "AUD", "-o", "OUT/o.wav", "--spectrogram", "OUT/s.wav", message="--spectrogram .*s.wav"),
    _cli("spectrogram-for-image", "sample", "IMG", "-o", "OUT/o.png", "--spectrogram", "OUT/s.png", message="--spectrogram is for audio"),
    _cli("device-nonsense", "sample", "IMG", "-o", "OUT/o.png", "--device", "nonsense", message="unknown device 'nonsense'"),
    _cli("device-cuda", "sample", "IMG", "-o", "OUT/o.png", "--device", "cuda:7", message="'cuda:7'"),
    _cli("device-train", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--device", "gpu", message="unknown device 'gpu'"),
    _cli("dtype-bad", "sample", "IMG", "-o", "OUT/o.png", "--dtype", "int8", message="invalid choice: 'int8'"),
    _cli("hub-abc", "sample", "hf-hub:a/b/c", "-o", "OUT/o.png", message="'a/b/c' is not a Hub repo"),
    _cli("hub-space", "score", "hf-hub:org/re po", "--input", "GOOD", message="'org/re po'"),
    _cli("hub-empty", "sample", "hf-hub:", "-o", "OUT/o.png", message="hf-hub:'' is not a Hub repo"),
    _cli("local-missing", "sample", "local-dir:/nonexistent", "-o", "OUT/o.png", message="has no config.json"),
    _cli("path-name", "sample", "./my-model", "-o", "OUT/o.png", message="local-dir:./my-model"),
    _cli("eval-limit-zero", "eval", "IMG", "--limit", "0", message="--limit: must be >= 1, got 0"),
    _cli("eval-limit-negative", "eval", "IMG", "--limit", "-5", message="--limit: must be >= 1, got -5"),
    _cli("eval-batch-zero", "eval", "IMG", "--batch-size", "0", message="--batch-size: must be >= 1, got 0"),
    _cli("eval-no-dataset", "eval", "IMG", message="pass --dataset"),
    _cli("eval-output-dir", "eval", "IMG", "-o", "OUT/missing_dir/r.json", message="missing_dir does not exist"),
    _cli("temperature-zero", "sample", "IMG", "-o", "OUT/o.png", "--temperature", "0", message="--temperature: must be a finite number > 0, got '0'"),
    _cli("temperature-word", "sample", "IMG", "-o", "OUT/o.png", "--temperature", "hot", message="'hot'"),
    _cli("temperature-inf", "sample", "IMG", "-o", "OUT/o.png", "--temperature", "inf", message="'inf'"),
    _cli("seconds-zero", "sample", "AUD", "-o", "OUT/o.wav", "--seconds", "0", message="--seconds: .*'0'"),
    _cli("seconds-nan", "sample", "AUD", "-o", "OUT/o.wav", "--seconds", "nan", message="'nan'"),
    _cli("seed-negative", "sample", "IMG", "-o", "OUT/o.png", "--seed", "-1", message="--seed: must be >= 0"),
    _cli("rows-negative", "complete", "IMG", "--input", "GOOD", "--rows", "-1", "-o", "OUT/o.png", message="--rows: must be >= 0"),
    _cli("rows-too-many", "complete", "IMG", "--input", "GOOD", "--rows", "9", "-o", "OUT/o.png", message="rows.*9"),
    _cli("complete-no-input", "complete", "IMG", "-o", "OUT/o.png", message="pass --input IMAGE and --rows K"),
    _cli("max-new-zero", "complete", "TXT", "--prompt", "ab", "--max-new-chars", "0", message="--max-new-chars: must be >= 1"),
    _cli("top-k-zero", "sample", "TXT", "--top-k", "0", message="--top-k: must be >= 1"),
    _cli("top-p-two", "sample", "TXT", "--top-p", "2", message="top_p.*2"),
    _cli("prompt-vocab", "complete", "TXT", "--prompt", "xyz", message="'xyz'"),
    _cli("text-no-prompt", "complete", "TXT", message="pass --prompt TEXT"),
    _cli("text-score-nothing", "score", "TXT", message="pass --text STRING or --input FILES"),
    _cli("text-score-condition", "score", "TXT", "--text", "ab", "--condition", "1", message="condition"),
    _cli("text-score-latin1", "score", "TXT", "--input", "LATIN1", message="latin1.txt"),
    _cli("score-big", "score", "IMG", "--input", "BIG", message="big.png is 4x5; this model takes 4x4"),
    _cli("score-bomb", "score", "IMG", "--input", "BOMB", message="bomb.png.*(20000x20000|too many pixels)"),
    _cli("complete-bomb", "complete", "IMG", "--input", "BOMB", "--rows", "1", "-o", "OUT/o.png", message="bomb.png"),
    _cli("score-not-image", "score", "IMG", "--input", "NOTJSON", message="not an image file"),
    _cli("score-missing-file", "score", "IMG", "--input", "OUT/none.png", message="none.png: no such file"),
    _cli("score-no-input", "score", "IMG", message="pass --input FILES"),
    _cli("score-condition-unconditional", "score", "IMG", "--input", "GOOD", "--condition", "zero", message="zero|condition"),
    _cli("score-condition-unknown", "score", "COND", "--input", "GOOD", "--condition", "seven", message="'seven'"),
    _cli("audio-score-not-audio", "score", "AUD", "--input", "GOOD", message="not an audio file"),
    _cli("audio-complete-no-input", "complete", "AUD", "-o", "OUT/o.wav", message="pass --input PREFIX.wav"),
    _cli("train-neither", "train", "--output", "OUT/run", message="give either a registry NAME or --recipe FILE"),
    _cli("train-both", "train", "pixelcnn-binarized-mnist", "--recipe", "NOTJSON", "--output", "OUT/run", message="either"),
    _cli("train-notjson", "train", "--recipe", "NOTJSON", "--output", "OUT/run", message="notjson.txt"),
    _cli("train-missing-recipe", "train", "--recipe", "OUT/none.json", "--output", "OUT/run", message="none.json not found"),
    _cli("train-unknown", "train", "nope", "--output", "OUT/run", message="unknown model 'nope'"),
    _cli("train-steps-abc", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "steps=abc", message="steps.*'abc'"),
    _cli("train-batch-zero", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "batch_size=0", message="batch_size.*0"),
    _cli("train-lr-negative", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "lr=-1", message="lr.*-1"),
    _cli("train-kernel-even", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "config.input_kernel=4",
         message="input_kernel.*4"),
    _cli("train-unknown-field", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "stepz=3", message="stepz"),
    _cli("train-no-equals", "train", "pixelcnn-binarized-mnist", "--output", "OUT/run", "--set", "steps", message="key=value, got 'steps'"),
    _cli("train-no-output", "train", "pixelcnn-binarized-mnist", message="--output"),
    _cli("publish-bad-repo", "publish", "IMGDIR", "--repo-id", "me/bad repo", "--dry-run", message="'me/bad repo'"),
    _cli("publish-user-folder", "publish", "USER", "--repo-id", "me/x", "--dry-run", message="has no config.json"),
    _cli("cache-bad-action", "cache", "purge", message="invalid choice: 'purge'"),
    _cli("cache-rm-no-name", "cache", "rm", "--cache-dir", "OUT/cache", message="needs the NAME"),
    _cli("cache-rm-unknown", "cache", "rm", "nope", "--cache-dir", "OUT/cache", message="unknown model 'nope'"),
]
CLI_CONTRACT = set()


def _cli_cases():
    return [pytest.param(*case, id=case[0]) if case[0] not in CLI_CONTRACT else xfail_contract(case) for case in CLI]


@pytest.mark.parametrize(("case", "argv", "message"), _cli_cases())
def test_cli_refuses_in_one_line(ws, case, argv, message, capsys):
    root, _ = ws
    files = {"IMG": f"local-dir:{root / 'image'}", "COND": f"local-dir:{root / 'cond'}", "TXT": f"local-dir:{root / 'text'}",
             "AUD": f"local-dir:{root / 'audio'}", "IMGDIR": str(root / "image"), "USER": str(root / "user"),
             "GOOD": str(root / "good.png"), "BIG": str(root / "big.png"), "BOMB": str(root / "bomb.png"),
             "NOTJSON": str(root / "notjson.txt"), "LATIN1": str(root / "latin1.txt")}
    argv = [files.get(a, a.replace("OUT", str(root))) for a in argv]
    before = snapshot(root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert snapshot(root) == before


def test_console_script_errors_in_a_fresh_process(ws):
    """Two cases through the real console entry point: status 2, one line, no traceback."""
    import subprocess
    import sys

    root, _ = ws
    for argv, message in ((["sample", f"local-dir:{root / 'image'}", "-o", str(root / "missing" / "o.png")], "does not exist"),
                          (["score", f"local-dir:{root / 'image'}", "--input", str(root / "bomb.png")], "bomb.png")):
        out = subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert message in out.stderr


def test_case_count():
    assert len(API) + len(CLI) >= 120, (len(API), len(CLI))
    json.dumps([c[0] for c in API + CLI])
