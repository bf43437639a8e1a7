"""Image datasets: MNIST, CIFAR-10 and STL-10 as tensors ready for a generative model.

Every loader returns ``(images, labels)``: ``images`` float32 ``[N, C, H, W]`` scaled from
uint8 pixels ``v`` to ``[-1, 1]`` by ``x = v / 127.5 - 1``, ``labels`` int64 ``[N]``.

Accepted layouts (``root`` is a file or a folder holding one of them):

* MNIST: ``mnist.npz`` (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``, uint8
  28x28), or the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``) in
  ``root``, ``root/raw`` or ``root/MNIST/raw`` (torchvision's folder).
* CIFAR-10: ``cifar10-jpeg-q75.tar.xz`` (``train|test/<class>/NNNN.jpg``; decoded once with
  Pillow and cached as uint8 ``.npz`` under ``cache_dir``, ``$DGFLOW_CACHE`` or
  ``~/.cache/dgflow``), or the python version: a ``cifar-10-batches-py`` folder
  (``data_batch_1..5``, ``test_batch`` pickles) or ``cifar-10-python.tar.gz``.
* STL-10: the extracted ``stl10_binary/`` folder (``{train,test,unlabeled}_X.bin``, ``{train,test}_y.bin``),
  resized to 48x48 by :func:`load_stl10`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..io import write_with

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

MNIST_LAYOUTS = ("mnist.npz (x_train, y_train, x_test, y_test)",
                 "IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                 "t10k-labels-idx1-ubyte (optionally .gz) in root, root/raw or root/MNIST/raw")
CIFAR_LAYOUTS = ("cifar10-jpeg-q75.tar.xz (train|test/<class>/NNNN.jpg)",
                 "cifar-10-batches-py/ (data_batch_1..5, test_batch)", "cifar-10-python.tar.gz")
_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def to_unit_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels ``[N, H, W]`` or ``[N, C, H, W]`` -> float32 ``[N, C, H, W]`` in [-1, 1]: ``v / 127.5 - 1``."""
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    if x.ndim == 3:
        x = x[:, None]
    return x.float().div_(127.5).sub_(1.0)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _missing(what: str, root: Path, layouts: tuple[str, ...]) -> FileNotFoundError:
    return FileNotFoundError(f"no {what} data found at {root}; pass the file or a folder holding one of: "
                             + "; ".join(layouts))


# ----------------------------------------------------------------------------------------- MNIST


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (``.gz`` too): 2 zero bytes, dtype code, ndim, ndim big-endian int32 sizes, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path} is not a readable IDX file ({err}); re-download it") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); re-download it")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).tolist() if len(raw) >= 4 + 4 * ndim else None
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    if dims is None or len(raw) != 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize:
        raise ValueError(f"{path} is truncated or corrupt: header says shape {dims}, file has {len(raw)} bytes; "
                         "re-download it")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, split: str) -> tuple[Path, Path] | None:
    for base in (folder, folder / "raw", folder / "MNIST" / "raw"):
        found = []
        for name in _IDX[split]:
            hits = [base / (name + ext) for ext in ("", ".gz") if (base / (name + ext)).is_file()]
            found.append(hits[0] if hits else None)
        if all(found):
            return found[0], found[1]
    return None


def _mnist_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in (f"x_{split}", f"y_{split}") if k in data.files}
            keys = sorted(data.files)
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a readable npz file ({err}); re-download it") from err
    if len(arrays) != 2:
        raise ValueError(f"{path} lacks x_{split}/y_{split} (has {keys}); "
                         "expected an MNIST npz with x_train, y_train, x_test, y_test")
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


def load_mnist(root: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` as (images ``[N, 1, 28, 28]`` in [-1, 1], labels int64 ``[N]``)."""
    _check_split(split)
    root = Path(root).expanduser()
    if root.is_file():
        if root.name.startswith(tuple(n for pair in _IDX.values() for n in pair)):  # one IDX file: use its folder
            pair = _find_idx(root.parent, split)
            if pair is None:
                raise _missing("MNIST", root.parent, MNIST_LAYOUTS)
            x, y = read_idx(pair[0]), read_idx(pair[1])
        else:
            x, y = _mnist_npz(root, split)
    elif root.is_dir() and (root / "mnist.npz").is_file():
        x, y = _mnist_npz(root / "mnist.npz", split)
    elif root.is_dir() and (pair := _find_idx(root, split)) is not None:
        x, y = read_idx(pair[0]), read_idx(pair[1])
    else:
        raise _missing("MNIST", root, MNIST_LAYOUTS)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
        raise ValueError(f"MNIST data at {root} has images {x.dtype} {x.shape} and labels {y.shape}; "
                         "expected uint8 [N, 28, 28] images and [N] labels")
    return to_unit_range(x), torch.from_numpy(y.astype(np.int64))


# -------------------------------------------------------------------------------------- CIFAR-10


def default_cache_dir() -> Path:
    """``$DGFLOW_CACHE`` if set, else ``~/.cache/dgflow``."""
    return Path(os.environ.get("DGFLOW_CACHE") or Path.home() / ".cache" / "dgflow").expanduser()


def _decode_jpeg_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Stream the tar.xz once, decode ``split/<class>/*.jpg``; images sorted by (class, file name)."""
    from PIL import Image, UnidentifiedImageError

    items: list[tuple[int, str, np.ndarray]] = []
    try:
        with tarfile.open(path, "r|*") as tf:
            for member in tf:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) != 3 or parts[0] != split:
                    continue
                if parts[1] not in CIFAR10_CLASSES:
                    raise ValueError(f"{path}: member {member.name} is in an unknown class folder {parts[1]!r}; "
                                     f"expected one of {', '.join(CIFAR10_CLASSES)}")
                with Image.open(io.BytesIO(tf.extractfile(member).read())) as im:
                    pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
                if pixels.shape != (32, 32, 3):
                    raise ValueError(f"{path}: {member.name} is {pixels.shape[1]}x{pixels.shape[0]}, expected 32x32")
                items.append((CIFAR10_CLASSES.index(parts[1]), parts[2], pixels))
    except (tarfile.TarError, EOFError, OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path} is not a readable CIFAR-10 JPEG tar archive ({err}); re-download it") from err
    if not items:
        raise ValueError(f"{path} holds no {split}/<class>/*.jpg images; expected the layout of "
                         "cifar10-jpeg-q75.tar.xz")
    items.sort(key=lambda t: (t[0], t[1]))
    x = np.stack([t[2] for t in items]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array([t[0] for t in items], dtype=np.int64)


def _jpeg_archive(path: Path, split: str, cache_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Decoded arrays from the cache ``<cache>/<stem>-<sha256[:16]>-<split>.npz``, written on first use."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    stem = path.name.split(".tar")[0]
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir())
    cache = cache / f"{stem}-{digest}-{split}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                return data["x"], data["y"]
        except (OSError, EOFError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    x, y = _decode_jpeg_archive(path, split)

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, x=x, y=y)

    write_with(cache, _write)
    return x, y


def _unpickle_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{where} is not a CIFAR-10 python batch (dict with b'data' [N, 3072] uint8 and "
                         f"b'labels'): {err!r}; re-download cifar-10-python.tar.gz") from err
    if len(x) != len(y):
        raise ValueError(f"{where} has {len(x)} images but {len(y)} labels; re-download it")
    return x, y


def _python_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in _CIFAR_BATCHES[split]:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing; a cifar-10-batches-py folder holds "
                                    "data_batch_1..5 and test_batch")
        parts.append(_unpickle_batch((folder / name).read_bytes(), str(folder / name)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _python_tarball(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for member in tf.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in _CIFAR_BATCHES[split]:
                    found[name] = tf.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable tar archive ({err}); re-download it") from err
    missing = [n for n in _CIFAR_BATCHES[split] if n not in found]
    if missing:
        raise ValueError(f"{path} lacks {missing}; expected cifar-10-python.tar.gz with cifar-10-batches-py/")
    parts = [_unpickle_batch(found[n], f"{path}:{n}") for n in _CIFAR_BATCHES[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(root: str | os.PathLike, split: str = "train",
                 cache_dir: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 ``split`` as (images ``[N, 3, 32, 32]`` in [-1, 1], labels int64 indexing ``CIFAR10_CLASSES``)."""
    _check_split(split)
    root = Path(root).expanduser()
    if root.is_dir():
        candidates = [root / "cifar10-jpeg-q75.tar.xz", root / "cifar-10-batches-py", root / "cifar-10-python.tar.gz"]
        if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
            candidates.insert(0, root)
        target = next((c for c in candidates if c.exists()), None)
        if target is None:
            raise _missing("CIFAR-10", root, CIFAR_LAYOUTS)
    elif root.is_file():
        target = root
    else:
        raise _missing("CIFAR-10", root, CIFAR_LAYOUTS)
    if target.is_dir():
        x, y = _python_folder(target, split)
    elif target.name.endswith((".tar.gz", ".tgz")):
        x, y = _python_tarball(target, split)
    else:
        x, y = _jpeg_archive(target, split, cache_dir)
    if y.min(initial=0) < 0 or y.max(initial=0) > 9:
        raise ValueError(f"CIFAR-10 labels at {target} fall outside 0..9; re-download it")
    return to_unit_range(x), torch.from_numpy(y)


# ----------------------------------------------------------------------------------------- STL-10

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
STL10_LAYOUTS = ("stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin: the "
                 "extracted stl10_binary.tar.gz)",)
_STL10_SIDE = 96
_STL10_PIXELS = 3 * _STL10_SIDE * _STL10_SIDE


def _stl10_folder(root: Path) -> Path:
    for folder in (root, root / "stl10_binary"):
        if folder.is_dir() and any((folder / f"{s}_X.bin").is_file() for s in ("train", "test", "unlabeled")):
            return folder
    if root.name.endswith((".tar.gz", ".tgz")) or (root / "stl10_binary.tar.gz").exists():
        raise FileNotFoundError(f"found the STL-10 archive at {root}, not its files; extract it first "
                                "(`tar xzf stl10_binary.tar.gz`) and pass the folder")
    raise _missing("STL-10", root, STL10_LAYOUTS)


def load_stl10(root: str | os.PathLike, split: str = "train", image_size: int = 48,
               chunk: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """STL-10 ``split`` (``train`` 5,000, ``test`` 8,000, ``unlabeled`` 100,000 images) from the binary files.

    ``<split>_X.bin`` holds uint8 images ``3 x 96 x 96`` each, stored column-major (the MATLAB layout:
    read as ``[N, 3, 96, 96]`` and swap the last two axes); ``<split>_y.bin`` uint8 labels ``1..10``.
    Images are resized to ``image_size`` (48 as in the DGflow / SN-GAN papers; 32 or 96 also work) by
    area averaging (2x2 box mean for 48) and returned in [-1, 1] with labels int64 ``0..9`` indexing
    ``STL10_CLASSES``; the ``unlabeled`` split returns labels ``-1``. Read in chunks of ``chunk``
    images from a memory map, so the 2.8 GB unlabeled file never sits in memory at full size.
    """
    import torch.nn.functional as F

    if split not in ("train", "test", "unlabeled"):
        raise ValueError(f"STL-10 split must be 'train', 'test' or 'unlabeled', got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= _STL10_SIDE:
        raise ValueError(f"image_size must be a whole number in 1..96 (the papers: 48), got {image_size!r}")
    folder = _stl10_folder(Path(root).expanduser())
    x_path = folder / f"{split}_X.bin"
    if not x_path.is_file():
        raise FileNotFoundError(f"{x_path} is missing; the STL-10 folder must hold {split}_X.bin")
    size = x_path.stat().st_size
    if size == 0 or size % _STL10_PIXELS:
        raise ValueError(f"{x_path} holds {size} bytes, not a whole number of 3x96x96 uint8 images; re-download it")
    n = size // _STL10_PIXELS
    pixels = np.memmap(x_path, dtype=np.uint8, mode="r", shape=(n, 3, _STL10_SIDE, _STL10_SIDE))
    images = torch.empty(n, 3, image_size, image_size)
    for start in range(0, n, chunk):
        block = torch.from_numpy(np.array(pixels[start:start + chunk])).transpose(2, 3).float()  # column-major
        if image_size != _STL10_SIDE:
            block = F.interpolate(block, size=(image_size, image_size), mode="area")
        images[start:start + len(block)] = block.div_(127.5).sub_(1.0)
    if split == "unlabeled":
        return images, torch.full((n,), -1, dtype=torch.int64)
    y_path = folder / f"{split}_y.bin"
    if not y_path.is_file():
        raise FileNotFoundError(f"{y_path} is missing; the STL-10 folder must hold {split}_y.bin")
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64)
    if len(labels) != n or labels.min(initial=1) < 1 or labels.max(initial=1) > 10:
        raise ValueError(f"{y_path} must hold {n} labels in 1..10 (one per image of {x_path.name}), got "
                         f"{len(labels)} in {labels.min(initial=1)}..{labels.max(initial=1)}; re-download it")
    return images, torch.from_numpy(labels - 1)


IMAGE_LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10, "stl10": load_stl10}


def load_real_images(dataset: str, root: str | os.PathLike, split: str) -> torch.Tensor:
    """The images of ``dataset``'s ``split`` (``mnist``, ``cifar10`` or ``stl10``) under ``root``, in [-1, 1]."""
    if dataset not in IMAGE_LOADERS:
        raise ValueError(f"no image loader for dataset {dataset!r}; use one of {sorted(IMAGE_LOADERS)}")
    return IMAGE_LOADERS[dataset](root, split=split)[0]
