"""PNG grids: zoo writes with PIL (importing torchvision cost 2.2 s of the CLI's main job) the grid torchvision would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

import zoo
from zoo.image import write_grid


@pytest.mark.parametrize("n, nrow, channels", [(16, None, 1), (5, 3, 1), (7, None, 3), (1, None, 3)])
def test_write_grid_is_torchvisions_grid(tmp_path, n, nrow, channels):
    model = zoo.build("pixelcnn", "tiny", channels=channels, levels=256, hidden=12, output_hidden=12)
    images = torch.randint(0, 256, (n, channels, 4, 4), dtype=torch.uint8)
    write_grid(images, model, str(tmp_path / "grid.png"), nrow=nrow)
    per_row = nrow or int(np.ceil(np.sqrt(n)))
    expected = make_grid(images.float() / 255, nrow=per_row, padding=2, pad_value=0.5).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    expected = expected.permute(1, 2, 0).numpy()
    got = np.array(Image.open(tmp_path / "grid.png"))
    assert np.array_equal(got, expected[:, :, 0] if channels == 1 else expected)
