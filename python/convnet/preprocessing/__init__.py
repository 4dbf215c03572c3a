"""``keras.preprocessing``'s names that Keras 3 keeps: ``image_dataset_from_directory`` and the
``image`` module (``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``, ``smart_resize``)."""

from ..data import image_dataset_from_directory
from . import image

__all__ = ["image", "image_dataset_from_directory"]
