"""Selection methods (keep or reject samples). Add one: a new file and one line in ``SELECTORS``."""

from .base import Proposals, Selector, SelectResult
from .drs import DRS
from .mhgan import MHGAN

SELECTORS: dict[str, type[Selector]] = {
    "drs": DRS,
    "mhgan": MHGAN,
}

__all__ = ["SELECTORS", "Selector", "SelectResult", "Proposals", "DRS", "MHGAN"]
