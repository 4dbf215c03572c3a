"""Which implementations a run times: built-in names, and anyone's ``module:Object``.

``--impl mypkg.mymodule:MyConv`` imports ``mypkg.mymodule`` (from the current
directory too, as ``python -m`` would) and takes ``MyConv``; ``--impl
path/to/file.py:MyConv`` imports the file. The object is a class (instantiated without arguments), an instance, or a plain
function ``conv2d(x, w, stride, padding)`` timed as the forward pass. The
function receives ``stride`` as ``(sh, sw)`` and ``padding`` as ``(ph, pw)``;
it is given ``dilation=(dh, dw)`` and ``groups=g`` only if its signature names
them, and problems needing them (or asymmetric padding) are reported as
unsupported otherwise. Installed packages can also offer implementations
through the ``cnnkernels_bench.impls`` entry-point group (name -> object).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys

import cnnkernels

from .impls import Cnnkernels, Torch
from .peers import DEFAULT_PEERS, PEERS

ENTRY_POINT_GROUP = "cnnkernels_bench.impls"


class ImplementationError(ValueError):
    """An --impl that cannot be loaded or does not follow the protocol; the message says which and why."""


class FunctionImpl:
    """A plain ``conv2d(x, w, stride, padding[, dilation, groups])`` as a forward-only implementation."""

    def __init__(self, function, name: str):
        self.function, self.name = function, name
        parameters = inspect.signature(function).parameters
        self.takes = {key for key in ("dilation", "groups") if key in parameters}

    def conv(self, problem, x, w, dy):
        top, bottom, left, right = problem.pads()
        if (top, left) != (bottom, right):
            raise NotImplementedError(f"asymmetric padding {problem.pads()} (a function takes (ph, pw))")
        extra = {}
        for key, value, plain in (("dilation", problem.dilations, (1, 1)), ("groups", problem.groups, 1)):
            if key in self.takes:
                extra[key] = value
            elif value != plain:
                raise NotImplementedError(f"{key}={value}: the function takes no {key!r} argument")
        return {"forward": lambda: self.function(x, w, problem.strides, (top, left), **extra)}


def load(spec: str):
    """The implementation ``spec`` names: ``module:Object`` or an entry point of :data:`ENTRY_POINT_GROUP`."""
    if ":" in spec:
        module_name, _, attribute = spec.rpartition(":")
        try:
            module = _import(module_name)
        except Exception as exc:  # a user's module may fail to import in any way: say which and why
            raise ImplementationError(f"--impl {spec}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
        target = module
        for part in attribute.split("."):
            if not hasattr(target, part):
                raise ImplementationError(f"--impl {spec}: {module_name!r} has no attribute {attribute!r}")
            target = getattr(target, part)
    else:
        points = [p for p in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if p.name == spec]
        if not points:
            raise ImplementationError(f"unknown or unavailable implementation {spec!r}; available here: {names()}, "
                                      "or module:Object")
        target = points[0].load()
    return _adapt(target, spec)


def _import(module_name: str):
    if module_name.endswith(".py") or os.sep in module_name:
        if not os.path.isfile(module_name):
            raise FileNotFoundError(f"no file {module_name!r}")
        name = "cnnkernels_bench_user_" + os.path.splitext(os.path.basename(module_name))[0]
        spec = importlib.util.spec_from_file_location(name, module_name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(module_name)


def _adapt(target, spec):
    if inspect.isclass(target):
        try:
            target = target()
        except Exception as exc:
            raise ImplementationError(f"--impl {spec}: {target.__name__}() failed: {type(exc).__name__}: {exc}") from exc
    if hasattr(target, "conv") or hasattr(target, "pool"):
        if not isinstance(getattr(target, "name", None), str):
            try:
                target.name = spec.rpartition(":")[2] or spec
            except AttributeError:
                raise ImplementationError(f"--impl {spec}: the object needs a string attribute 'name'") from None
        return target
    if callable(target):
        return FunctionImpl(target, getattr(target, "__name__", spec))
    raise ImplementationError(f"--impl {spec}: expected a class, an object with conv()/pool(), or a function "
                              f"conv2d(x, w, stride, padding); received {type(target).__name__}")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def builtin_names() -> list[str]:
    """The built-in implementations that can run here, the default ones first."""
    found = [("numpy-ref" if b == "numpy" else b) for b in cnnkernels.backends()]
    if _installed("torch"):
        found += ["torch", "torch-nhwc"]
    return found + [name for name, (_, module) in PEERS.items() if _installed(module)]


def names() -> list[str]:
    return builtin_names() + [p.name for p in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def _builtin(name: str):
    if name in ("numpy-ref", *cnnkernels.backends()) and name != "numpy":
        return Cnnkernels("numpy" if name == "numpy-ref" else name)
    if name in ("torch", "torch-nhwc"):
        return Torch(channels_last=name == "torch-nhwc")
    cls, _ = PEERS[name]
    try:
        return cls()
    except ImportError as exc:
        raise ImplementationError(f"--impl {name}: {exc}") from exc


def resolve(specs=None) -> list:
    """Implementation objects for ``specs`` (names, ``module:Object``, ``all``); by default the cnnkernels backends,
    PyTorch and the installed engines (onnxruntime, TensorFlow, JAX)."""
    here = builtin_names()
    if not specs:
        specs = [n for n in here if n not in PEERS or n in DEFAULT_PEERS]
    elif "all" in specs:
        specs = here + [s for s in specs if s != "all" and s not in here]
    chosen, seen = [], set()
    for spec in dict.fromkeys(specs):
        impl = _builtin(spec) if spec in here else load(spec)
        if impl.name in seen:
            raise ImplementationError(f"two implementations are named {impl.name!r}; give one a different 'name'")
        seen.add(impl.name)
        chosen.append(impl)
    return chosen
