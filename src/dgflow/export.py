"""``dgflow export RUN``: a run's images in the formats other FID evaluators read.

* ``--png DIR``: one PNG per sample, ``DIR/<id:06d>.png`` (uint8, grey or RGB as generated) -- the
  image folder that EDM's ``fid.py calc``, clean-fid and pytorch-fid take.
* ``--npz-arr0 FILE``: guided-diffusion's evaluator format (``evaluations/evaluator.py``): an ``.npz``
  whose ``arr_0`` is uint8 ``[N, H, W, 3]`` (grey images repeated to three channels).

``RUN`` is a folder written by ``dgflow refine`` (``samples/step_<k>.npz``; the last step unless
``step`` is given) or ``dgflow sample`` (``samples/<variant>.npz``; ``guided`` unless ``variant`` is
given). Sample files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from . import io


def run_samples(run: str | os.PathLike, step: int | None = None, variant: str | None = None) -> tuple[np.ndarray, np.ndarray, Path]:
    """``(images uint8 [N, H, W, C], ids [N], the .npz read)`` of a refine or sample run folder."""
    samples = Path(run) / "samples"
    if not samples.is_dir():
        raise FileNotFoundError(f"{run} has no samples/ folder: pass the folder of a `dgflow refine` or `dgflow sample` run")
    steps = {int(m.group(1)): p for p in samples.glob("step_*.npz") if (m := re.fullmatch(r"step_(\d+)\.npz", p.name))}
    if steps:
        if variant is not None:
            raise ValueError(f"{run} is a refine run (samples/step_*.npz): use --step, not --variant")
        if step is None:
            step = max(steps)
        if step not in steps:
            raise ValueError(f"{run} has no samples at step {step}; it has steps {sorted(steps)}")
        path = steps[step]
    else:
        variants = sorted(p.stem for p in samples.glob("*.npz"))
        if not variants:
            raise FileNotFoundError(f"{samples} holds no .npz sample files (has the run finished?)")
        if step is not None:
            raise ValueError(f"{run} is a sample run (samples/<variant>.npz): use --variant, not --step")
        variant = variant or ("guided" if "guided" in variants else variants[0])
        if variant not in variants:
            raise ValueError(f"{run} has no variant {variant!r}; it has {', '.join(variants)}")
        path = samples / f"{variant}.npz"
    with np.load(path, allow_pickle=False) as data:
        x, ids = data["x"], data["ids"] if "ids" in data.files else np.arange(len(data["x"]))
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
        raise ValueError(f"{path} holds samples of shape {x.shape} ({x.dtype}), not images: export writes uint8 "
                         "images [N, H, W, 1 or 3] (2-D points and sentences have no image format)")
    return x, ids, path


def export_png(images: np.ndarray, ids: np.ndarray, out_dir: str | os.PathLike) -> int:
    """Write ``out_dir/<id:06d>.png`` per image; returns the number written."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for img, i in zip(images, ids):
        pil = Image.fromarray(img[:, :, 0], mode="L") if img.shape[2] == 1 else Image.fromarray(img, mode="RGB")
        io.write_with(out / f"{int(i):06d}.png", lambda tmp, pil=pil: pil.save(tmp, format="PNG"))
    return len(images)


def export_npz_arr0(images: np.ndarray, path: str | os.PathLike) -> tuple[int, ...]:
    """Write guided-diffusion's ``arr_0`` (uint8 ``[N, H, W, 3]``); returns its shape."""

    arr = np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    io.write_npz(path, {"arr_0": arr})
    return arr.shape
