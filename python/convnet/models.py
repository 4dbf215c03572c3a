"""Keras's import path for models: ``from convnet.models import Sequential, Model, load_model``."""

from __future__ import annotations

import json

from .functional import Model
from .io import load_model
from .sequential import Sequential


def model_from_json(json_string, custom_objects=None):
    """A model (unbuilt weights initialised afresh) from :meth:`Model.to_json`'s text."""
    from .serialization import layer_from_config

    try:
        entry = json.loads(json_string)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_from_json needs the JSON text of Model.to_json(); {exc}") from None
    return layer_from_config(entry)


__all__ = ["Model", "Sequential", "load_model", "model_from_json"]
