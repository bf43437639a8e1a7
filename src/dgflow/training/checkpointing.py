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
from types import FrameType
from typing import Any

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
