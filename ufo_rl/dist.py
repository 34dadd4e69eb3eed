"""The processes of one launch (``accelerate launch``, torchrun): rank, device, order, collectives.

Everything goes through accelerate's ``PartialState``, which reads the launcher's environment
and sets up the process group (NCCL on GPUs, gloo on CPUs). Under one process every helper is a
no-op: ``rank() == 0``, ``world_size() == 1``, ``broadcast(x) is x``, ``gather(x) == [x]``, so
the single-process path does exactly what it did before there was a launch to speak of.

What the processes share (README, "GPUs, vLLM, many jobs"): every rank loads the pool and
scores its share of the score-cache chunks (``shard``; ufo_rl/cache.py), rank 0 gathers them,
writes the cache and every file of the run, and evaluates; TRL's GRPOTrainer shards training.
"""

from __future__ import annotations

import atexit
from collections.abc import Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
_finish_registered = False


def state():
    """accelerate's ``PartialState`` (a shared singleton; cheap after the first call). On a machine
    without CUDA it is asked for the CPU, so a multi-process launch there runs on gloo. Under a
    launch, the process group is torn down when the process exits (:func:`finish`)."""
    global _finish_registered
    from accelerate import PartialState

    s = PartialState(cpu=not torch.cuda.is_available())
    if s.num_processes > 1 and not _finish_registered:
        atexit.register(finish)
        _finish_registered = True
    return s


def rank() -> int:
    """This process's index among all processes of the launch (0 without a launcher)."""
    return state().process_index


def world_size() -> int:
    """How many processes the launch runs (1 without a launcher)."""
    return state().num_processes


def is_main_process() -> bool:
    """True on rank 0, the one process that writes files and evaluates."""
    return state().is_main_process


def device() -> torch.device:
    """This process's device: ``cuda:<local rank>`` on GPUs, ``cpu`` otherwise."""
    dev = state().device
    return torch.device("cpu") if dev.type == "cpu" else dev


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (building or converting a model, filling a cache), then the
    others, which find its result; a no-op under one process."""
    with state().main_process_first():
        yield


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from index ``rank`` (round robin,
    deterministic; the shares of all ranks are disjoint and together are ``items``).

    >>> [shard(list(range(5)), r, 2) for r in (0, 1)]
    [[0, 2, 4], [1, 3]]
    """
    return list(items[rank::world])


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (any picklable object; the others' argument is ignored)."""
    if world_size() == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]


def gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    from accelerate.utils import gather_object

    return gather_object([obj])


def finish() -> None:
    """Tear the process group down at the end of a launch (gloo aborts a process that exits
    with its group still up)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
