"""Data-parallel training and batch inference on MPI (``mpi4py``), used by the trainer when the
process runs under ``mpiexec`` / ``srun`` with more than one rank.

Synchronous data parallelism, as Horovod and PyTorch's DDP do it:

- every rank starts from rank 0's weights and optimizer state, and checks at the start that all
  ranks have the same model and data (a clear error, not a hang, when they do not);
- each epoch's order is drawn from a seed all ranks share, so the ranks' shards partition the
  data exactly: global batch = ``batch_size`` × ranks, each rank taking its slice (a dataset is
  dealt out batch by batch);
- each rank backpropagates the global loss Σᵢ lᵢ / N over its own samples (its loss gradient
  scaled by n_rank / N), so summing the gradients across ranks (``Allreduce``, one contiguous
  buffer per bucket) gives exactly the one-process gradient of the global batch; every rank then
  takes the identical optimizer step, and the weights are compared across ranks every
  :data:`CHECK_EVERY` steps;
- ``BatchNormalization(synchronized=True)`` (Keras's argument) reduces its batch statistics and
  their gradients across ranks; otherwise statistics are per rank (as DDP) and the moving
  averages are averaged at each epoch's end; dropout and augmentation draw per rank;
- logs (loss, metrics, validation) are reduced, so every rank sees the global numbers and
  callbacks such as EarlyStopping decide alike; only rank 0 prints and writes files.

An uncaught exception on any rank aborts the whole job (``MPI.COMM_WORLD.Abort``) after printing
its traceback, so no rank waits forever for a dead one. Importing convnet never needs mpi4py;
running under MPI without it is a clear error. ``CONVNET_DISTRIBUTED=0`` turns all this off.
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback

import numpy as np

CHECK_EVERY = 50  # steps between weight comparisons across ranks
BUCKET_ELEMENTS = 1 << 22  # gradients are summed in buffers of at most this many values (16 MB in float32)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")
_THREAD_VARIABLES = ("CNNKERNELS_NUM_THREADS", "OMP_NUM_THREADS")

_strategy = None
_looked = False


def _launched_with_ranks() -> bool:
    """Whether a launcher started this process as one of several ranks (read from its environment)."""
    for name in _SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


def current():
    """The process's :class:`MPIStrategy` when it runs as one of several MPI ranks, else None."""
    global _strategy, _looked
    if _looked:
        return _strategy
    _looked = True
    if os.environ.get("CONVNET_DISTRIBUTED", "").strip() == "0" or not _launched_with_ranks():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("this process was started as one of several MPI ranks, but mpi4py is not installed: "
                          "pip install \"cnnkernels[mpi]\" (and an MPI, e.g. pip install mpich), or set "
                          "CONVNET_DISTRIBUTED=0") from None
    if MPI.COMM_WORLD.Get_size() > 1:
        _strategy = MPIStrategy(MPI.COMM_WORLD)
    return _strategy


def is_chief() -> bool:
    """True on rank 0 and in a single process: the rank that prints and writes files."""
    strategy = current()
    return strategy is None or strategy.rank == 0


class MPIStrategy:
    """The collective operations the trainer needs, on one MPI communicator."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local_size = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        self._install_abort_on_error()
        if not any(name in os.environ for name in _THREAD_VARIABLES):
            import cnnkernels

            # ranks × threads never more than the cores: each rank gets its share of this machine's
            cnnkernels.set_num_threads(max(1, len(os.sched_getaffinity(0)) // self.local_size))

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def _install_abort_on_error(self):
        previous = sys.excepthook

        def abort(kind, value, trace):
            sys.stderr.write(f"convnet: rank {self.rank} of {self.size} failed; aborting every rank\n")
            sys.stderr.write("".join(traceback.format_exception(kind, value, trace)))
            sys.stderr.flush()
            if kind is KeyboardInterrupt:
                previous(kind, value, trace)
            self.comm.Abort(1)

        sys.excepthook = abort

    # -- collectives -----------------------------------------------------------------------
    def sum(self, values) -> np.ndarray:
        """Σ over ranks of a float64 vector (small: counts, log sums, metric states)."""
        buffer = np.ascontiguousarray(values, dtype=np.float64).copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def sum_arrays(self, arrays) -> None:
        """Σ over ranks of each array, in place, packed into contiguous buckets (few large messages,
        not one per weight)."""
        bucket, size = [], 0
        for array in arrays:
            if size and size + array.size > BUCKET_ELEMENTS:
                self._sum_bucket(bucket)
                bucket, size = [], 0
            bucket.append(array)
            size += array.size
        if bucket:
            self._sum_bucket(bucket)

    def _sum_bucket(self, arrays):
        dtype = np.result_type(*arrays)
        buffer = np.concatenate([np.asarray(a, dtype).ravel() for a in arrays])
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        start = 0
        for array in arrays:
            array[...] = buffer[start:start + array.size].reshape(array.shape)
            start += array.size

    def broadcast(self, value, root=0):
        return self.comm.bcast(value, root=root)

    def gather_ordered(self, part) -> list:
        """Every rank's ``part`` (any picklable value), in rank order, on every rank."""
        return self.comm.allgather(part)

    def agree(self, what: str, value) -> None:
        """Raise on every rank (the same error) unless every rank has the same ``value``."""
        digest = hashlib.sha256(repr(value).encode()).hexdigest()
        digests = self.comm.allgather(digest)
        if len(set(digests)) > 1:
            differing = [r for r, d in enumerate(digests) if d != digests[0]]
            raise ValueError(f"the MPI ranks disagree on {what}: ranks {differing} differ from rank 0 "
                             f"({value!r:.200} on rank {self.rank}); start every rank with the same script, "
                             "data and model")

    # -- what the trainer asks ------------------------------------------------------------------
    def shard_range(self, n: int) -> range:
        """This rank's contiguous share of n items (the first ranks take one more when n does not divide)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (self.rank < extra))

    def lockstep(self, local_items, empty, stop=lambda: False):
        """This rank's items, one per step, for as long as any rank has one and no rank's ``stop()`` is
        true: a rank that has run out takes ``empty()`` (a batch of no samples), so every rank joins
        every step's collectives, and all stop together."""
        iterator = iter(local_items)
        while True:
            item = next(iterator, None)
            have, stopping = self.sum([item is not None, bool(stop())])
            if have == 0 or stopping:
                return
            yield empty() if item is None else item

    def start_fit(self, model, data_fingerprint) -> int:
        """Check that the ranks agree, start every rank from rank 0's state, draw per-rank randomness.
        Returns the seed of the epochs' shared shuffling."""
        from ._random import generator, set_seed

        self.agree("the model", model.to_json())
        self.agree("the training data", data_fingerprint)
        self.agree("the optimizer", model.optimizer.get_config() if model.optimizer else None)
        weights = self.broadcast(model.get_weights() if self.is_chief else None)
        model.set_weights(weights)
        state = self.broadcast(_optimizer_state(model) if self.is_chief else None)
        _restore_optimizer_state(model, state)
        model._initial_epoch = self.broadcast(model._initial_epoch)
        seed = self.broadcast(int(generator().integers(2**31)) if self.is_chief else None)
        set_seed(seed * self.size + self.rank)  # dropout masks and augmentation differ per rank
        return seed

    def average_state(self, model) -> None:
        """Make the non-trainable state (BatchNormalization's moving averages) the ranks' mean."""
        states = [value for layer in _leaves(model) for value in layer.state.values()]
        if states:
            self.sum_arrays(states)
            for value in states:
                value /= self.size

    def check_weights(self, model) -> None:
        """Raise if the ranks' weights have drifted apart (they take identical steps; a difference
        means a rank computed something else)."""
        summary = np.array([float(np.sum(w, dtype=np.float64)) for w in model.get_weights()] or [0.0])
        low, high = summary.copy(), summary.copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, low, op=self.MPI.MIN)
        self.comm.Allreduce(self.MPI.IN_PLACE, high, op=self.MPI.MAX)
        if not np.array_equal(low, high):
            raise RuntimeError(f"the MPI ranks' weights differ (weight {int(np.argmax(high - low))}): a rank ran a "
                               "different step")


def _leaves(model):
    from .graph import _leaves as leaves

    return leaves(model)


def _optimizer_state(model):
    if not getattr(model, "compiled", False):
        return None
    from .callbacks_files import optimizer_state

    return optimizer_state(model)


def _restore_optimizer_state(model, state):
    if state is not None:
        from .callbacks_files import restore_optimizer_state

        restore_optimizer_state(model, state)
