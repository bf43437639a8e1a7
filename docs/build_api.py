"""Build the API reference (HTML, from the docstrings) with pdoc: ``python docs/build_api.py [OUT]``.

Every public module of dgflow is documented (``dgflow/__init__.py``'s ``__all__`` alone would hide
the submodules from pdoc). Output: ``OUT/index.html`` (default ``docs/api/``, not kept in git).
"""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path


def public_modules() -> list[str]:
    """``dgflow`` and every submodule whose dotted name has no part starting with ``_``."""
    import dgflow

    names = [m.name for m in pkgutil.walk_packages(dgflow.__path__, "dgflow.")]
    return ["dgflow"] + sorted(n for n in names if not any(p.startswith("_") for p in n.split(".")))


def build(out: str | Path) -> Path:
    """Write the HTML reference into ``out``; returns ``out``."""
    import pdoc
    import pdoc.render

    import warnings

    warnings.filterwarnings("ignore", message="Error parsing type annotation")  # postponed annotations of NamedTuples
    warnings.filterwarnings("ignore", message="The module specification")  # a package listed with its submodules
    pdoc.render.configure(docformat="restructuredtext", footer_text="dgflow API reference")
    pdoc.pdoc(*public_modules(), output_directory=Path(out))
    return Path(out)


if __name__ == "__main__":
    target = build(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "api")
    print(f"wrote {target / 'index.html'}")
