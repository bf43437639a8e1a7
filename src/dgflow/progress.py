"""Progress of long loops: a tqdm bar on a terminal, periodic log lines elsewhere.

``progress_bar`` takes tqdm's arguments and is used wherever dgflow shows progress. On a
terminal (or in a notebook) it is tqdm. Off a terminal (output to a file, a batch job) tqdm
would print nothing; there it writes a line to the standard :mod:`logging` logger
``dgflow.progress`` every 10% of the work or every 30 seconds, whichever comes first::

    12:01:07 GAN (hinge): 40% (320/800) in 15.2 min, about 22.8 min left

Both print one ETA line once the first steps have been timed (at least 2 s or 2% of the work).
Transient bars (``leave=False``: the library's own ``refine``, ``select``, ``guide``) vanish on a
terminal; elsewhere they log only every 30 seconds (with the time left), so short calls stay quiet. The CLI configures logging to
print these lines; a library user sees them after ``logging.basicConfig(level=logging.INFO)``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger("dgflow.progress")

LOG_EVERY_FRACTION = 0.1
LOG_EVERY_SECONDS = 30.0
ETA_AFTER_SECONDS = 2.0
ETA_AFTER_FRACTION = 0.02


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def eta_line(desc: str, done: int, total: int, elapsed: float, initial: int = 0) -> str:
    """One line: the measured rate and the time the remaining ``total - done`` steps will take."""
    rate = elapsed / max(done - initial, 1)
    left = rate * (total - done)
    finish = time.strftime("%H:%M", time.localtime(time.time() + left))
    return (f"{desc}: {total - done} of {total} steps left at {rate:.3g} s/step: about {format_seconds(left)} "
            f"(done about {finish})")


def _on_terminal() -> bool:
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 disable: bool | None = False, initial: int = 0, leave: bool = True, **kwargs: Any):
    """tqdm's interface; ``disable=None`` (tqdm's "only on a terminal") and ``False`` both mean
    "show progress", on a terminal as a bar, elsewhere as log lines. ``disable=True`` shows nothing."""
    if disable is True:
        return tqdm(iterable, desc=desc, total=total, disable=True, initial=initial, **kwargs)
    if _on_terminal():
        return _TerminalBar(iterable, desc=desc, total=total, initial=initial, leave=leave, **kwargs)
    return LogProgress(iterable, desc=desc, total=total, initial=initial, transient=not leave)


class _TerminalBar(tqdm):
    """tqdm, plus one ETA line printed above the bar once the first steps are timed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._eta_said = False
        self._start_n = self.n

    def update(self, n: float | None = 1) -> bool | None:
        """tqdm's update, then the ETA line once the first steps are timed."""
        out = super().update(n)
        if not self._eta_said and self.total and self.leave:
            elapsed = self.format_dict["elapsed"]
            if elapsed >= ETA_AFTER_SECONDS or (self.n - self._start_n) >= ETA_AFTER_FRACTION * self.total:
                self._eta_said = True
                if self.n < self.total:
                    self.write(eta_line(self.desc.rstrip(": ") or "progress", int(self.n), int(self.total),
                                        elapsed, self._start_n), file=sys.stderr)
        return out


class LogProgress:
    """The subset of tqdm dgflow uses (iteration, ``update``, ``set_postfix``, ``write``, ``close``,
    context manager), reporting through :data:`logger` at INFO. ``transient``: log only every
    :data:`LOG_EVERY_SECONDS` (no 10% lines, no separate ETA line)."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", total: int | None = None,
                 initial: int = 0, transient: bool = False) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable) + initial  # type: ignore[arg-type]
        self.iterable, self.desc, self.total, self.n = iterable, desc or "progress", total, initial
        self._initial = initial
        self._start = self._last_time = time.perf_counter()
        self._last_n = initial
        self._eta_said = False
        self._postfix = ""
        self.transient = transient

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "LogProgress without an iterable: call update() instead"
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown after the progress (as tqdm's ``set_postfix``)."""
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Rename the task."""
        self.desc = desc or self.desc

    @staticmethod
    def write(text: str, file: Any = None, **kwargs: Any) -> None:
        logger.info(text)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more steps; log when 10% more is done or 30 s have passed."""
        self.n += n
        now = time.perf_counter()
        elapsed = now - self._start
        if self.transient:
            if now - self._last_time >= LOG_EVERY_SECONDS:
                self._log(now)
        elif self.total:
            if not self._eta_said and (elapsed >= ETA_AFTER_SECONDS
                                       or self.n - self._initial >= ETA_AFTER_FRACTION * self.total):
                self._eta_said = True
                if self.n < self.total:
                    logger.info(eta_line(self.desc, int(self.n), int(self.total), elapsed, self._initial))
            step = max(1, int(LOG_EVERY_FRACTION * self.total))
            crossed = self.n // step > self._last_n // step
            if crossed or now - self._last_time >= LOG_EVERY_SECONDS or self.n >= self.total:
                self._log(now)
        elif now - self._last_time >= LOG_EVERY_SECONDS:
            self._log(now)

    def _log(self, now: float) -> None:
        if self.n == self._last_n:
            return
        elapsed = now - self._start
        if self.total:
            left = elapsed / max(self.n - self._initial, 1) * (self.total - self.n)
            text = (f"{self.desc}: {100 * self.n / self.total:.0f}% ({int(self.n)}/{int(self.total)}) in "
                    f"{format_seconds(elapsed)}" + (f", about {format_seconds(left)} left" if self.n < self.total
                                                    else ""))
        else:
            text = f"{self.desc}: {int(self.n)} in {format_seconds(elapsed)}"
        logger.info(text + (f" [{self._postfix}]" if self._postfix else ""))
        self._last_time, self._last_n = now, self.n

    def close(self) -> None:
        """Nothing to release (tqdm's interface)."""
        pass


def progress_write(text: str) -> None:
    """A message between progress updates: above the bar on a terminal, a log line elsewhere."""
    if _on_terminal():
        tqdm.write(text, file=sys.stderr)
    else:
        logger.info(text)
