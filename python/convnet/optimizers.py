"""SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax and Nadam with Keras 3's defaults and
update formulas, gradient clipping (``clipnorm``, ``clipvalue``, ``global_clipnorm``), decoupled
``weight_decay`` and learning-rate schedules (:mod:`convnet.schedules`).

Each step, as Keras 3's ``apply``: the gradients are clipped, then every variable decays by
``variable · weight_decay · lr``, then each variable takes its optimizer's update with the
step's learning rate — the schedule's value at the step count, or
``learning_rate / (1 + decay · iterations)`` with the legacy ``decay`` argument (Keras 2, used
by the tutorial).
"""

from __future__ import annotations

import cnnkernels
import numpy as np

from . import schedules

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _fused(variable) -> bool:
    """Whether cnnkernels' one-pass step can update ``variable`` in place (else NumPy's expressions do)."""
    return variable.dtype in _FUSED_DTYPES and variable.flags.c_contiguous and variable.flags.writeable


def _check_number(name, value, *, low=0.0, low_inclusive=True, high=None):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low) and (high is None or value < high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"{name} must be a number {bound}; received {name}={value!r}")
    return float(value)


def _optional_positive(name, value):
    return None if value is None else _check_number(name, value, low_inclusive=False)


class Optimizer:
    name = ""
    # Keras 3's options that change nothing at these values (accepted, so Keras configs load)
    _NO_OP = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
              "gradient_accumulation_steps": None, "name": None, "jit_compile": True, "is_legacy_optimizer": False}

    def __init__(self, learning_rate, decay=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **keras_options):
        labels = ("name", "ema_momentum", "jit_compile")  # these only label or tune what is off
        for key, value in keras_options.items():
            if key not in self._NO_OP or (key not in labels and value != self._NO_OP[key]):
                raise TypeError(f"{type(self).__name__} does not support {key}={value!r}")
        self.learning_rate = learning_rate
        self.decay = _check_number("decay", decay)
        self.weight_decay = None if weight_decay is None else _check_number("weight_decay", weight_decay)
        self.clipnorm = _optional_positive("clipnorm", clipnorm)
        self.clipvalue = _optional_positive("clipvalue", clipvalue)
        self.global_clipnorm = _optional_positive("global_clipnorm", global_clipnorm)
        if sum(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("give at most one of clipnorm, clipvalue and global_clipnorm; received "
                             f"clipnorm={clipnorm!r}, clipvalue={clipvalue!r}, global_clipnorm={global_clipnorm!r}")
        self.iterations = 0
        # Slots keyed by the variable itself (Keras keys by variable): the list of trainable
        # variables may change between steps (a layer frozen or unfrozen), positions may not.
        # Each entry keeps its variable alive, so an id is never reused for another array.
        self._slots: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}

    @property
    def learning_rate(self):
        """A float, or the schedule given (``current_learning_rate()`` is this step's value)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, dict):
            value = schedules.get(value)
        if not isinstance(value, schedules.LearningRateSchedule):
            value = _check_number("learning_rate", float(value) if isinstance(value, np.generic) else value,
                                  low_inclusive=False)
        self._learning_rate = value

    def _slot(self, variable, name, initial=0.0):
        _, slots = self._slots.setdefault(id(variable), (variable, {}))
        if name not in slots:
            slots[name] = np.full_like(variable, initial)
        return slots[name]

    def current_learning_rate(self) -> float:
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate / (1.0 + self.decay * self.iterations)

    def _clip(self, gradients):
        if self.clipnorm is not None:  # each gradient to norm ≤ clipnorm
            return [g * (self.clipnorm / max(float(np.sqrt(np.sum(np.square(g)))), self.clipnorm)) for g in gradients]
        if self.global_clipnorm is not None:  # all together to norm ≤ global_clipnorm
            norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in gradients)))
            scale = self.global_clipnorm * min(1.0 / norm if norm else np.inf, 1.0 / self.global_clipnorm)
            return [g * g.dtype.type(scale) for g in gradients]
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in gradients]
        return gradients

    def apply(self, variables, gradients) -> None:
        """Update each array in ``variables`` in place from its gradient; one step."""
        lr = self.current_learning_rate()
        gradients = self._clip([g.astype(v.dtype, copy=False) for v, g in zip(variables, gradients)])
        if self.weight_decay:
            for variable in variables:
                variable -= variable * variable.dtype.type(self.weight_decay * lr)
        self._before_updates()
        for variable, gradient in zip(variables, gradients):
            self._update(variable, gradient, lr)
        self.iterations += 1

    def _before_updates(self) -> None:
        """What a step computes once for all variables (Nadam's momentum product)."""

    def _update(self, variable, gradient, lr):
        raise NotImplementedError

    def get_config(self):
        lr = self._learning_rate
        config = {"name": self.name,
                  "learning_rate": schedules.serialize(lr) if isinstance(lr, schedules.LearningRateSchedule) else lr}
        if self.decay:
            config["decay"] = self.decay
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config


class SGD(Optimizer):
    """v ← v − lr·g, or with momentum m ← μ·m − lr·g; v ← v + m (Nesterov: v ← v + μ·m − lr·g)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, decay=0.0, **kwargs):
        super().__init__(learning_rate, decay, **kwargs)
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

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, decay=0.0,
                 **kwargs):
        super().__init__(learning_rate, decay, **kwargs)
        self.rho = _check_number("rho", rho, high=1.0)
        self.momentum = _check_number("momentum", momentum, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        self.centered = bool(centered)

    def _update(self, variable, gradient, lr):
        velocity = self._slot(variable, "velocity")
        if not self.centered and self.momentum == 0 and _fused(variable):  # the common case: one compiled pass
            cnnkernels.rmsprop_update(variable, gradient, velocity, lr, self.rho, self.epsilon)
            return
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

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, decay=0.0,
                 **kwargs):
        super().__init__(learning_rate, decay, **kwargs)
        self.beta_1 = _check_number("beta_1", beta_1, high=1.0)
        self.beta_2 = _check_number("beta_2", beta_2, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    def _update(self, variable, gradient, lr):
        step = self.iterations + 1
        m = self._slot(variable, "momentum")
        v = self._slot(variable, "velocity")
        alpha = lr * np.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        if not self.amsgrad and _fused(variable):  # one compiled pass, the same roundings
            cnnkernels.adam_update(variable, gradient, m, v, alpha, self.beta_1, self.beta_2, self.epsilon)
            return
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


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004): w ← w − w·λ·lr before Adam's step."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """a ← a + g² (a starts at ``initial_accumulator_value``); w ← w − lr·g / sqrt(a + ε)."""

    name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _check_number("initial_accumulator_value", initial_accumulator_value)
        self.epsilon = _check_number("epsilon", epsilon)

    def _update(self, variable, gradient, lr):
        accumulator = self._slot(variable, "accumulator", self.initial_accumulator_value)
        accumulator += np.square(gradient)
        variable -= lr * gradient / np.sqrt(accumulator + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """a ← ρa + (1−ρ)g²; Δ = −sqrt(d + ε)/sqrt(a + ε)·g; d ← ρd + (1−ρ)Δ²; w ← w + lr·Δ."""

    name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _check_number("rho", rho, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)

    def _update(self, variable, gradient, lr):
        accumulated_grad = self._slot(variable, "accumulated_grad")
        accumulated_delta = self._slot(variable, "accumulated_delta_var")
        accumulated_grad[...] = self.rho * accumulated_grad + (1 - self.rho) * np.square(gradient)
        delta = -np.sqrt(accumulated_delta + self.epsilon) * gradient / np.sqrt(accumulated_grad + self.epsilon)
        accumulated_delta[...] = self.rho * accumulated_delta + (1 - self.rho) * np.square(delta)
        variable += lr * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """m ← m + (g−m)(1−β₁); u ← max(β₂u, |g|); w ← w − lr·m / ((1−β₁ᵗ)(u + ε))."""

    name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _check_number("beta_1", beta_1, high=1.0)
        self.beta_2 = _check_number("beta_2", beta_2, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon)

    def _update(self, variable, gradient, lr):
        m, u = self._slot(variable, "momentum"), self._slot(variable, "norm")
        m += (gradient - m) * (1 - self.beta_1)
        np.maximum(self.beta_2 * u, np.abs(gradient), out=u)
        variable -= lr * m / ((1 - self.beta_1 ** (self.iterations + 1)) * (u + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Adamax):
    """Adam with Nesterov momentum and Keras 3's momentum schedule μₜ = β₁(1 − ½·0.96ᵗ)."""

    name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.u_product = 1.0

    def _before_updates(self):
        self.u_product *= self.beta_1 * (1 - 0.5 * 0.96 ** (self.iterations + 1))

    def _update(self, variable, gradient, lr):
        step = self.iterations + 1
        u_t = self.beta_1 * (1 - 0.5 * 0.96**step)
        u_t_1 = self.beta_1 * (1 - 0.5 * 0.96 ** (step + 1))
        u_product_t_1 = self.u_product * u_t_1
        m, v = self._slot(variable, "momentum"), self._slot(variable, "velocity")
        m += (gradient - m) * (1 - self.beta_1)
        v += (np.square(gradient) - v) * (1 - self.beta_2)
        m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * gradient / (1 - self.u_product)
        v_hat = v / (1 - self.beta_2**step)
        variable -= m_hat * lr / (np.sqrt(v_hat) + self.epsilon)


_BY_NAME = {cls.name: cls for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam)}


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", ...), a config dict or an instance."""
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
