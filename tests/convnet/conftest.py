"""Image folders generated on the fly: three colour classes, PNG and JPEG, one corrupt file."""

import numpy as np
import pytest


def write_class_folders(root, per_class=12, size=(12, 12), corrupt=True, seed=0):
    """root/<red|green|blue>/*.png|jpg: each image dominated by its class colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for channel, name in enumerate(["blue", "green", "red"][::-1]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, (*size, 3), dtype=np.uint8)
            pixels[:, :, channel] = rng.integers(170, 256, size, dtype=np.uint8)
            extension = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(folder / f"{name}_{i:02d}.{extension}")
    if corrupt:
        (root / "green" / "broken.png").write_bytes(b"this is not an image")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_class_folders(tmp_path / "colours")
