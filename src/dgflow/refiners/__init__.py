"""Refinement methods (move each sample). Add one: a new file and one line in ``REFINERS``."""

from .base import Refiner
from .ddls import DDLS
from .dgflow import DGflow
from .dot import DOT

REFINERS: dict[str, type[Refiner]] = {
    "dgflow": DGflow,
    "ddls": DDLS,
    "dot": DOT,
}

__all__ = ["REFINERS", "Refiner", "DGflow", "DDLS", "DOT"]
