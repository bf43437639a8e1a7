"""Several processes, one result: sharding a run over ``torchrun`` ranks with ``torch.distributed``.

    torchrun --nproc_per_node=N -m dgflow refine --config run.yml

``torchrun`` starts N copies of the command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a
rendezvous address in the environment; :func:`init` joins that process group (``nccl`` when the
run's device is a GPU, ``gloo`` on the CPU) and gives each rank its device (``cuda:LOCAL_RANK``).
Started without ``torchrun`` everything here is a no-op for one process, so the same code runs
either way.

Why the result does not depend on N: every per-sample random draw is keyed by ``(seed, sample id)``
(:mod:`dgflow.rng`), and a run is cut into the *same* batches whatever N is; rank ``r`` takes the
batches ``k`` with ``k % N == r`` (:func:`shard`), so every batch is computed by the same kernels on
the same rows as in a one-process run. Statistics that all batches share are computed once on rank 0
and broadcast (:func:`on_main`); rank 0 alone merges the per-batch files and writes the outputs.

The helpers are generic (any picklable value, any list of work items) so other commands that
split work by sample (``dgflow sample``) use them the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """This process's place in the run: ``rank`` of ``world_size``, and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when :func:`init` created the process group (and :func:`finalize` ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from ``torch.distributed`` if initialised, else from torchrun's
    environment variables, else ``(0, 1, 0)``."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), local


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise (CPU)."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """The device of one rank: ``cuda`` (or ``None`` with a GPU present) becomes ``cuda:LOCAL_RANK``."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


def init(device: str | torch.device | None = None, timeout: timedelta = timedelta(hours=2)) -> Context:
    """Join the process group ``torchrun`` describes (a no-op for a single process).

    ``timeout`` bounds how long a rank waits in a collective, e.g. for rank 0 to compute a shared
    statistic (the default of ``torch.distributed`` is 30 minutes).
    """
    rank, world, local = env_world()
    dev = rank_device(device, local)
    if world == 1:
        return Context(0, 1, 0, dev)
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed; run with one process")
    owns = False
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but no MASTER_ADDR: start multi-process runs with torchrun "
                               "(torchrun --nproc_per_node=N -m dgflow ...)")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend_for(dev), timeout=timeout)
        owns = True
    return Context(dist.get_rank(), dist.get_world_size(), local, dev, owns)


def finalize(ctx: Context) -> None:
    """End the process group if :func:`init` started it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait until every rank gets here."""
    if _active():
        dist.barrier()


def shard(items: Sequence[T], rank: int | None = None, world_size: int | None = None) -> list[T]:
    """The items this rank owns: ``items[k]`` for ``k % world_size == rank`` (a fixed function of ``k``)."""
    if rank is None or world_size is None:
        rank, world_size, _ = env_world()
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size), got rank={rank}, world_size={world_size}")
    return [items[k] for k in range(rank, len(items), world_size)]


def broadcast(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` on every rank (any picklable object)."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not _active():
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def agree(value: T, what: str = "value") -> T:
    """Check that every rank holds the same ``value`` (compared with ``==``); return it."""
    values = gather(value)
    if any(not _equal(v, values[0]) for v in values[1:]):
        raise RuntimeError(f"the ranks disagree on {what}: {values}")
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    return bool(a == b)


def on_main(fn: Callable[[], T], share: bool = True) -> T | None:
    """Run ``fn`` on rank 0 only; every rank returns its result (``share=False``: ``None`` elsewhere).

    An exception on rank 0 is raised on every rank, so no rank waits forever for a result that
    will not come.
    """
    if not _active():
        return fn()
    result: Any = None
    error: BaseException | None = None
    if dist.get_rank() == 0:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
            error = exc
    message = None if error is None else f"{type(error).__name__}: {error}"
    box = [(message, result if share and error is None else None)]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    message, value = box[0]
    if message is not None:
        raise RuntimeError(f"rank 0 failed: {message}")
    return result if dist.get_rank() == 0 else value
