"""The `zoo` command line on a tiny local checkpoint: outputs, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main


@pytest.fixture
def model_arg(tiny_folder):
    return f"local-dir:{tiny_folder}"


def write_png(path, pixels):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def test_sample_writes_a_grid(tmp_path, model_arg, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", model_arg, "-n", "4", "-o", str(out), "--seed", "1"]) == 0
    with Image.open(out) as im:
        assert im.size == (2 * 4 + 3 * 2, 2 * 4 + 3 * 2)  # 2x2 grid of 4x4 images, 2-pixel padding
    again = tmp_path / "again.png"
    main(["sample", model_arg, "-n", "4", "-o", str(again), "--seed", "1"])
    assert out.read_bytes() == again.read_bytes()
    assert "wrote 4 samples" in capsys.readouterr().out


def test_complete_and_score(tmp_path, model_arg, capsys):
    image = write_png(tmp_path / "in.png", [[0, 255, 0, 255]] * 4)
    out = tmp_path / "done.png"
    assert main(["complete", model_arg, "--input", str(image), "--rows", "2", "-n", "3", "-o", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("L"))
    for k in range(4):  # the input and its three completions keep the two known rows
        tile = grid[2:6, 2 + 6 * k : 6 + 6 * k]
        assert (tile[:2] == np.array([[0, 255, 0, 255]] * 2)).all()
    assert main(["score", model_arg, "--input", str(image)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(str(image)) and "nats" in line and "bits/dim" in line


def test_list_and_info(capsys):
    assert main(["list", "--json"]) == 0
    names = json.loads(capsys.readouterr().out)
    assert isinstance(names, list)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "pixelcnn-binarized-mnst"], "unknown model 'pixelcnn-binarized-mnst'"),
        (["sample", "local-dir:/nonexistent", "-o", "x.png"], "has no config.json"),
        (["score", "MODEL", "--input", "BIG"], "is 5x4; this model takes 4x4"),
        (["score", "MODEL", "--input", "GREY"], "binary images.*--binarize"),
        (["score", "MODEL", "--input", "x.txt"], "not an image file"),
        (["sample", "MODEL", "-n", "0", "-o", "x.png"], "argument -n: must be >= 1, got 0"),
        (["complete", "MODEL", "--input", "GOOD", "--rows", "9", "-o", "x.png"], "rows must be an int in 0..4"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, model_arg, argv, message, capsys):
    files = {
        "MODEL": model_arg,
        "BIG": str(write_png(tmp_path / "big.png", np.zeros((4, 5)))),
        "GREY": str(write_png(tmp_path / "grey.png", np.full((4, 4), 100))),
        "GOOD": str(write_png(tmp_path / "good.png", np.zeros((4, 4)))),
    }
    assert main([files.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_console_script_exit_code():
    done = subprocess.run([sys.executable, "-m", "zoo", "info", "nope"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "zoo info: error: unknown model 'nope'; `zoo list` shows every name"


@pytest.fixture
def text_model_arg(tmp_path):
    import zoo

    folder = tmp_path / "tiny-text"
    zoo.build("char-transformer", "tiny").save_pretrained(folder)
    return f"local-dir:{folder}"


def test_text_commands(tmp_path, text_model_arg, capsys):
    assert main(["complete", text_model_arg, "--prompt", "ab", "--max-new-chars", "10", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ab") and len(out.rstrip("\n")) >= 2
    assert main(["sample", text_model_arg, "-n", "2", "--max-new-chars", "5", "--top-k", "2", "-o", str(tmp_path / "s.txt")]) == 0
    assert "wrote 2 text(s)" in capsys.readouterr().out and (tmp_path / "s.txt").read_text().endswith("\n")
    (tmp_path / "t.txt").write_text("abc ")
    assert main(["score", text_model_arg, "--text", "ab", "--input", str(tmp_path / "t.txt")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert lines[0].startswith("--text\t") and lines[1].startswith(str(tmp_path / "t.txt")) and "nats/char" in lines[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["complete", "MODEL", "--max-new-chars", "3"], "pass --prompt TEXT"),
        (["complete", "MODEL", "--prompt", "xyz"], "outside this model's vocabulary: 'xyz'"),
        (["score", "MODEL"], "pass --text STRING or --input FILES"),
        (["sample", "MODEL", "--top-p", "2"], "top_p must be"),
    ],
)
def test_text_errors(text_model_arg, argv, message, capsys):
    assert main([text_model_arg if a == "MODEL" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
