"""When a training loop saves: every few minutes, at its own schedule, and on SIGINT / SIGTERM.

    with SaveOnSignal(save, every_seconds=120) as saver:
        for it in range(start + 1, iterations + 1):
            ...one iteration...
            saver.step(it)          # saves when due or when a signal arrived, between iterations

A signal does not stop an iteration halfway: the handler only notes it, ``step`` saves the
finished iteration and then raises :class:`KeyboardInterrupt` (the CLI prints one line and
exits). A second Ctrl-C while the first is pending interrupts at once. Run again with the
same ``--out`` (and ``--iterations``) to resume from the saved iteration.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch

SAVE_EVERY_SECONDS = 120.0


class SaveOnSignal:
    """Call ``save(iteration)`` every ``every_seconds`` and when SIGINT / SIGTERM arrives (then raise
    :class:`KeyboardInterrupt`). Signal handlers are installed only in the main thread."""

    def __init__(self, save: Callable[[int], None], every_seconds: float | None = SAVE_EVERY_SECONDS) -> None:
        self.save = save
        self.every_seconds = every_seconds
        self.signal_name: str | None = None
        self.saved_at: int | None = None
        self._previous: dict[int, Any] = {}
        self._last = time.monotonic()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> SaveOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        self._last = time.monotonic()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def step(self, iteration: int, saved: bool = False) -> None:
        """After ``iteration`` is complete: save if a signal came (then raise) or the interval passed.
        ``saved``: the loop has just saved this iteration itself."""
        if saved:
            self.saved_at, self._last = iteration, time.monotonic()
        if self.signal_name is not None:
            if not saved:
                self.save(iteration)
            self.saved_at = iteration
            raise KeyboardInterrupt(f"{self.signal_name}: saved iteration {iteration}; run the same command "
                                    "again to resume")
        if not saved and self.every_seconds is not None and time.monotonic() - self._last >= self.every_seconds:
            self.save(iteration)
            self.saved_at = iteration
            self._last = time.monotonic()


class Resumable:
    """The checkpoint a training loop saves to and resumes from: ``path`` (``None``: neither), the models'
    ``archs`` (``{role: (arch, config)}``, so that :func:`dgflow.zoo.load_checkpoint` loads the file) and
    ``meta``. The loop registers its models, optimizers and random generators with :meth:`start`, then

        start, log = ck.start(models, optimizers, rngs, iterations, progress)
        with ck:
            for it in range(start + 1, iterations + 1):
                ...one iteration, appending to log...
                ck.step(it, final=it == iterations)   # saves at the end, every few minutes and on a signal

    The file holds the weights (tensors) plus ``training``: the optimizers' states, the generators' and
    torch's global random states, the iteration and the log, so a resumed run continues the same random
    stream as an uninterrupted one, and a larger ``iterations`` continues a finished run.
    """

    def __init__(self, path: str | Path | None, archs: dict[str, tuple[str, dict[str, Any]]] | None = None,
                 meta: dict[str, Any] | None = None, every_seconds: float | None = SAVE_EVERY_SECONDS,
                 rngs: dict[str, Any] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.archs = archs or {}
        self.meta = meta or {}
        self.every_seconds = every_seconds
        self.models: dict[str, Any] = {}
        self.optimizers: dict[str, Any] = {}
        self.rngs: dict[str, Any] = dict(rngs or {})
        self.log: list[dict[str, float]] = []
        self.iteration = 0  # the last finished iteration
        self._saver: SaveOnSignal | None = None

    def start(self, models: dict[str, Any], optimizers: dict[str, Any], rngs: dict[str, Any], iterations: int,
              progress: bool = True) -> tuple[int, list[dict[str, float]]]:
        """Register the loop's state; load it from ``path`` if that exists. Returns ``(iteration, log)``."""
        from .. import io
        from ..zoo import load_state_strict

        self.models, self.optimizers = models, optimizers
        self.rngs.update(rngs)
        if self.path is None or not self.path.exists():
            return 0, self.log
        ck = io.load_checkpoint_file(self.path)
        state = ck.get("training")
        if not isinstance(state, dict) or "iteration" not in state:
            raise ValueError(f"{self.path} holds no training state to resume from; choose another --out")
        missing = [name for name in [*optimizers, *self.rngs, "log"] if name not in state]
        missing += [role for role in models if role not in ck.get("models", {})]
        if missing:
            raise ValueError(f"{self.path} was written by another kind of training (it lacks {missing}); choose "
                             "another --out")
        for role, model in models.items():
            load_state_strict(model, ck["models"][role]["state_dict"], f"{self.path} [{role}]")
        for name, opt in optimizers.items():
            opt.load_state_dict(state[name])
        for name, rng in self.rngs.items():
            rng.set_state(state[name])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        start, self.log = int(state["iteration"]), list(state["log"])
        self.iteration = start
        if progress:
            print(f"resuming {self.path} at iteration {start} of {iterations}" if start < iterations else
                  f"{self.path} is already trained for {start} iterations; pass a larger --iterations to continue",
                  flush=True)
        return start, self.log

    def save(self, iteration: int) -> None:
        """Write the models and the training state after ``iteration``."""
        from ..zoo import save_checkpoint

        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        archs = {role: self.archs.get(role, (type(m).__name__, {})) for role, m in self.models.items()}
        state = {name: opt.state_dict() for name, opt in self.optimizers.items()}
        state.update({name: rng.get_state() for name, rng in self.rngs.items()})
        state.update(torch_rng=torch.get_rng_state(), iteration=iteration, log=self.log)
        save_checkpoint(self.path, {role: (*archs[role], m) for role, m in self.models.items()}, self.meta,
                        extra={"training": state})

    def __enter__(self) -> Resumable:
        if self.path is not None:
            self._saver = SaveOnSignal(self.save, self.every_seconds).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._saver is not None:
            self._saver.__exit__(*exc)
            self._saver = None

    def step(self, iteration: int, final: bool = False, scheduled: bool = False) -> None:
        """After ``iteration``: save if ``final`` or ``scheduled``, when the interval passed, or on a signal
        (then raise :class:`KeyboardInterrupt`)."""
        self.iteration = iteration
        if self.path is None:
            return
        if final or scheduled:
            self.save(iteration)
        if self._saver is not None:
            self._saver.step(iteration, saved=final or scheduled)
