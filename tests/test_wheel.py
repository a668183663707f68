"""A wheel built from this checkout carries registry/ and hub_configs/ and loads the bundled checkpoint.

Built offline: the build backend (hatchling, from the test extras) is the one installed here, and
pip never reaches a package index (``--no-build-isolation --no-index``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_installed_wheel_loads_the_bundled_checkpoint(tmp_path):
    pytest.importorskip("hatchling", reason="the build backend hatchling is not installed (pip install -e '.[test]' brings it)")
    offline = ["--no-deps", "--no-index", "-q"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", *offline, "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True)
    (wheel,) = (tmp_path / "dist").glob("zoo-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", *offline, "--target", str(target), str(wheel)], check=True)
    script = """
import json, torch, zoo
model = zoo.load("pixelcnn-binarized-mnist")
x = model.sample(2, generator=torch.Generator().manual_seed(0), progress=False)
print(json.dumps({"file": zoo.__file__, "entry": model.entry.name, "local_dir": str(model.entry.local_dir),
                  "nats": model.log_prob(x).tolist()}))
"""
    # Run from an empty folder with the wheel first on the path, so nothing comes from the checkout.
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["file"].startswith(str(target)) and result["local_dir"].startswith(str(target / "zoo" / "_data"))
    assert result["entry"] == "pixelcnn-binarized-mnist" and all(v < 0 for v in result["nats"])
