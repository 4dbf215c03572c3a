"""``keras.preprocessing.image``: the image helpers of :mod:`convnet.utils`, and ``smart_resize``."""

from __future__ import annotations

import numpy as np

from ..utils import array_to_img, img_to_array, load_img, save_img


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last"):
    """Resize an image (H, W, C) or a batch (N, H, W, C) to ``size`` after taking its centred window of
    that aspect ratio (Keras's ``smart_resize``), bilinear with half-pixel centres."""
    from ..layers.preprocessing import _Resize, aspect_crop

    x = np.asarray(x, np.float32)
    single = x.ndim == 3
    batch = x[None] if single else x
    if batch.ndim != 4:
        raise ValueError(f"smart_resize expects (height, width, channels) or a batch of them; received shape "
                         f"{x.shape}")
    nchw = batch if data_format == "channels_first" else batch.transpose(0, 3, 1, 2)
    height, width = nchw.shape[2:]
    resize = _Resize((height, width), tuple(size), interpolation, aspect_crop(height, width, *size))
    out = resize.forward(nchw)
    out = out if data_format == "channels_first" else out.transpose(0, 2, 3, 1)
    return out[0] if single else out


__all__ = ["array_to_img", "img_to_array", "load_img", "save_img", "smart_resize"]
