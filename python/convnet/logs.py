"""The running logs of an epoch: Keras's means (losses weighted by batch size, metrics as their
own state says), and the same logs reduced over MPI ranks."""

from __future__ import annotations

import numpy as np


class Totals:
    """Running sums of one epoch (or one evaluation) for a compiled model's outputs."""

    def __init__(self, model):
        self.names = [t.node.layer.name for t in model.outputs]
        self.multi = len(self.names) > 1
        # every key from the start, so that every MPI rank's logs have the same keys even when a
        # rank saw no samples
        keys = ["loss", *(f"{name}_loss" for name in self.names if self.multi)]
        self.sums: dict[str, float] = dict.fromkeys(keys, 0.0)
        self.weights: dict[str, float] = dict.fromkeys(keys, 0.0)
        self.metrics = [[metric.fresh() for metric in per_output] for per_output in model._metric_fns]

    def add(self, key, value, weight):
        self.sums[key] = self.sums.get(key, 0.0) + value * weight
        self.weights[key] = self.weights.get(key, 0.0) + weight

    def record(self, n, total, per_output, outputs, ys, sample_weight):
        self.add("loss", total, n)
        if self.multi:
            for name, value in zip(self.names, per_output):
                self.add(f"{name}_loss", value, n)
        for metrics, y, prediction in zip(self.metrics, ys, outputs):
            for metric in metrics:
                metric.update_state(y, prediction, sample_weight)

    @property
    def samples(self) -> float:
        return self.weights["loss"]

    def logs(self) -> dict:
        return self._logs(self.sums, self.weights, self.metrics)

    def _logs(self, sums, weights, metrics) -> dict:
        logs = {key: sums[key] / weights[key] if weights[key] else 0.0 for key in sums}
        for name, per_output in zip(self.names, metrics):
            for metric in per_output:
                logs[f"{name}_{metric.name}" if self.multi else metric.name] = metric.result()
        return logs

    def global_logs(self, strategy) -> "tuple[dict, float]":
        """(the logs over every rank's samples, how many samples that was): one Allreduce."""
        keys = list(self.sums)
        states = [metric.state() for per_output in self.metrics for metric in per_output]
        vector = np.concatenate([[self.sums[k] for k in keys], [self.weights[k] for k in keys], *states])
        reduced = strategy.sum(vector)
        sums, weights = dict(zip(keys, reduced[:len(keys)])), dict(zip(keys, reduced[len(keys):2 * len(keys)]))
        start, metrics = 2 * len(keys), []
        for per_output in self.metrics:
            merged = []
            for metric in per_output:
                size = metric.state().size
                merged.append(metric.fresh().set_state(reduced[start:start + size]))
                start += size
            metrics.append(merged)
        return self._logs(sums, weights, metrics), float(weights["loss"])
