"""``dgflow data mnist|cifar10 --out DIR``: get a dataset file from its standard source, or say where to put it.

The files are those the loaders of :mod:`dgflow.data.images` read:

* MNIST: ``mnist.npz`` (the Keras copy: ``x_train``, ``y_train``, ``x_test``, ``y_test``, uint8).
* CIFAR-10: ``cifar-10-python.tar.gz`` (Krizhevsky's Python version).

A download is checked by loading it (60,000 / 50,000 training images) before it is kept.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset file comes from and what the loader expects of it."""

    file: str
    url: str
    train_images: int
    note: str


SOURCES = {
    "mnist": DatasetSource("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                           60_000, "11 MB; keys x_train, y_train, x_test, y_test (the IDX files "
                           "train-images-idx3-ubyte(.gz) etc. from the MNIST site work too)"),
    "cifar10": DatasetSource("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                             50_000, "163 MB; the 'CIFAR-10 python version' (an unpacked cifar-10-batches-py/ "
                             "folder works too)"),
}


def _check(dataset: str, path: Path) -> int:
    """The number of training images the loader reads from ``path`` (raises if it cannot read them)."""
    from .images import load_cifar10, load_mnist

    images, _ = (load_mnist if dataset == "mnist" else load_cifar10)(path, split="train")
    return len(images)


def present(dataset: str, out_dir: str | os.PathLike) -> Path | None:
    """``out_dir`` if the loader finds the dataset there (in any layout it reads), else ``None``.
    A file that is there but unreadable raises the loader's error (it names the fix)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    try:
        _check(dataset, out_dir)
    except FileNotFoundError:
        return None
    return out_dir


def offline_help(dataset: str, out_dir: str | os.PathLike, reason: str) -> str:
    """What to download by hand, and where to put it."""
    src = SOURCES[dataset]
    return (f"could not download {src.url} ({reason}).\n"
            f"On a machine with internet access, download that file ({src.note}) and place it at\n"
            f"    {Path(out_dir) / src.file}\n"
            f"then run this command again to check it, and pass --data {out_dir} (or data_root: {out_dir}).")


def fetch(dataset: str, out_dir: str | os.PathLike, timeout: float = 30.0, url: str | None = None) -> Path:
    """Download ``dataset`` into ``out_dir`` (unless it is already there) and check it; returns the
    folder to pass as ``--data`` / ``data_root``.

    Raises :class:`ConnectionError` with :func:`offline_help`'s text when the download fails.
    """
    if dataset not in SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(SOURCES)}")
    out_dir = Path(out_dir)
    found = present(dataset, out_dir)
    if found is not None:
        return found
    src = SOURCES[dataset]
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".part-", suffix=f"-{src.file}")
    try:
        try:
            with urllib.request.urlopen(url or src.url, timeout=timeout) as response, os.fdopen(fd, "wb") as fh:
                shutil.copyfileobj(response, fh)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ConnectionError(offline_help(dataset, out_dir, getattr(exc, "reason", None) or str(exc))) from exc
        count = _check(dataset, Path(tmp))
        if count != src.train_images:
            raise ValueError(f"the download from {url or src.url} holds {count} training images, expected "
                             f"{src.train_images}; it was not kept")
        os.replace(tmp, out_dir / src.file)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_dir
