"""SGD, RMSprop and Adam with Keras 3's defaults and update formulas.

The update of each weight uses the learning rate of the step,
``learning_rate / (1 + decay · iterations)`` when the legacy ``decay`` argument
(Keras 2, used by the tutorial) is given.
"""

from __future__ import annotations

import numpy as np


def _check_number(name, value, *, low=0.0, low_inclusive=True, high=None):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low) and (high is None or value < high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"{name} must be a number {bound}; received {name}={value!r}")
    return float(value)


class Optimizer:
    name = ""

    def __init__(self, learning_rate, decay=0.0):
        self.learning_rate = _check_number("learning_rate", learning_rate, low_inclusive=False)
        self.decay = _check_number("decay", decay)
        self.iterations = 0
        # Slots keyed by the variable itself (Keras keys by variable): the list of trainable
        # variables may change between steps (a layer frozen or unfrozen), positions may not.
        # Each entry keeps its variable alive, so an id is never reused for another array.
        self._slots: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    def _slot(self, variable, name):
        _, slots = self._slots.setdefault(id(variable), (variable, {}))
        if name not in slots:
            slots[name] = np.zeros_like(variable)
        return slots[name]

    def current_learning_rate(self) -> float:
        return self.learning_rate / (1.0 + self.decay * self.iterations)

    def apply(self, variables, gradients) -> None:
        """Update each array in ``variables`` in place from its gradient; one step."""
        lr = self.current_learning_rate()
        for variable, gradient in zip(variables, gradients):
            self._update(variable, gradient.astype(variable.dtype, copy=False), lr)
        self.iterations += 1

    def _update(self, variable, gradient, lr):
        raise NotImplementedError

    def get_config(self):
        config = {"name": self.name, "learning_rate": self.learning_rate}
        if self.decay:
            config["decay"] = self.decay
        return config


class SGD(Optimizer):
    """v ← v − lr·g, or with momentum m ← μ·m − lr·g; v ← v + m (Nesterov: v ← v + μ·m − lr·g)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, decay=0.0):
        super().__init__(learning_rate, decay)
        self.momentum = _check_number("momentum", momentum, high=1.0)
        self.nesterov = bool(nesterov)

    def _update(self, variable, gradient, lr):
        if self.momentum == 0:
            variable -= lr * gradient
            return
        m = self._slot(variable, "momentum")
        m[...] = m * self.momentum - gradient * lr
        if self.nesterov:
            variable += m * self.momentum - gradient * lr
        else:
            variable += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """a ← ρ·a + (1−ρ)·g²; Δ = lr·g / sqrt(a + ε) (centered: a − ḡ² + ε); v ← v − Δ (or through momentum)."""

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, decay=0.0):
        super().__init__(learning_rate, decay)
        self.rho = _check_number("rho", rho, high=1.0)
        self.momentum = _check_number("momentum", momentum, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        self.centered = bool(centered)

    def _update(self, variable, gradient, lr):
        velocity = self._slot(variable, "velocity")
        velocity[...] = self.rho * velocity + (1 - self.rho) * np.square(gradient)
        if self.centered:
            average = self._slot(variable, "average_gradient")
            average[...] = self.rho * average + (1 - self.rho) * gradient
            denominator = velocity - np.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = lr * gradient / np.sqrt(denominator)
        if self.momentum > 0:
            m = self._slot(variable, "momentum")
            m[...] = self.momentum * m + increment
            variable -= m
        else:
            variable -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """m ← m + (g−m)(1−β₁); v ← v + (g²−v)(1−β₂); w ← w − lr·sqrt(1−β₂ᵗ)/(1−β₁ᵗ)·m / (sqrt(v) + ε)."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, decay=0.0):
        super().__init__(learning_rate, decay)
        self.beta_1 = _check_number("beta_1", beta_1, high=1.0)
        self.beta_2 = _check_number("beta_2", beta_2, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    def _update(self, variable, gradient, lr):
        step = self.iterations + 1
        m = self._slot(variable, "momentum")
        v = self._slot(variable, "velocity")
        alpha = lr * np.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m += (gradient - m) * (1 - self.beta_1)
        v += (np.square(gradient) - v) * (1 - self.beta_2)
        if self.amsgrad:
            v_hat = self._slot(variable, "velocity_hat")
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        variable -= (m * alpha) / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "rmsprop", "adam"), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = _BY_NAME.get(str(config.pop("name", "")).lower())
        if cls is None:
            raise ValueError(f"unknown optimizer config {identifier!r}")
        return cls(**config)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown optimizer; expected one of {sorted(_BY_NAME)}; received optimizer={identifier!r}")
