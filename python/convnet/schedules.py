"""Learning-rate schedules with Keras 3's names and formulas (``keras.optimizers.schedules``):
an optimizer given one evaluates it at its step count before each update."""

from __future__ import annotations

import math


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; received {name}={value!r}")
    return value


class LearningRateSchedule:
    """Subclass and define ``__call__(step) -> learning rate`` (and ``get_config``)."""

    def __call__(self, step) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class ExponentialDecay(LearningRateSchedule):
    """lr₀ · rate^(step / decay_steps) (the exponent floored when ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    """lr₀ / (1 + rate · step / decay_steps) (floored when ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate / (1 + self.decay_rate * (math.floor(p) if self.staircase else p))


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to boundaries[0] (inclusive), values[1] up to boundaries[1], ..., values[-1] after."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"values must have one more entry than boundaries; received boundaries={boundaries!r}, "
                             f"values={values!r}")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries must increase; received boundaries={boundaries!r}")
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """lr₀ · ((1 − α)·½(1 + cos(π·min(step, decay_steps)/decay_steps)) + α), after an optional linear
    warm-up from lr₀ to ``warmup_target`` over ``warmup_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.alpha, self.name, self.warmup_target, self.warmup_steps = alpha, name, warmup_target, warmup_steps

    def _decay(self, step, start):
        cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * fraction + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class PolynomialDecay(LearningRateSchedule):
    """(lr₀ − end)·(1 − step/decay_steps)^power + end (``cycle``: decay_steps stretched to the next multiple)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, _positive("decay_steps", decay_steps)
        self.end_learning_rate, self.power, self.cycle, self.name = end_learning_rate, power, bool(cycle), name

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        fraction = step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - fraction) ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, CosineDecay,
                                         PolynomialDecay)}


def serialize(schedule) -> dict:
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def get(identifier):
    """A schedule from an instance or a Keras config ``{"class_name": "ExponentialDecay", "config": {...}}``."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in CLASSES:
        return CLASSES[identifier["class_name"]](**(identifier.get("config") or {}))
    raise ValueError(f"unknown learning-rate schedule; expected one of {sorted(CLASSES)}; received {identifier!r}")
