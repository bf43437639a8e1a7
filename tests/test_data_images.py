"""dgflow.data: MNIST (npz, IDX) and CIFAR-10 (JPEG tar.xz, python pickles) loaders."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dgflow.data import CIFAR10_CLASSES, load_cifar10, load_mnist, read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST = SHARED / "mnist.npz"
CIFAR = SHARED / "cifar10-jpeg-q75.tar.xz"


def _idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + np.array(a.shape, ">i4").tobytes() + a.astype(np.uint8).tobytes()


# ------------------------------------------------------------------------------------------ MNIST


@pytest.mark.skipif(not MNIST.is_file(), reason=f"shared MNIST copy not found at {MNIST}")
@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_mnist_shared_npz(split, n):
    for root in (MNIST, SHARED):  # the file itself or the folder holding it
        x, y = load_mnist(root, split=split)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert x.min() == -1 and x.max() == 1
        assert sorted(y.unique().tolist()) == list(range(10))
    raw = np.load(MNIST)[f"x_{split}"][:5]
    assert torch.equal(x[:5, 0], torch.from_numpy(raw).float() / 127.5 - 1)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["", "raw", "MNIST/raw"])
def test_mnist_idx_layouts(tmp_path, gz, sub):
    rng = np.random.default_rng(0)
    folder = tmp_path / sub
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, (img, lab) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        n = 7 if split == "train" else 3
        data[split] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)
        for name, arr in ((img, data[split][0]), (lab, data[split][1])):
            raw = _idx_bytes(arr)
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    for split in ("train", "test"):
        x, y = load_mnist(tmp_path, split=split)
        assert torch.equal(x[:, 0], torch.from_numpy(data[split][0]).float() / 127.5 - 1)
        assert torch.equal(y, torch.from_numpy(data[split][1]).long())


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)
    good = tmp_path / "good"
    good.write_bytes(_idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3)))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_mnist_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist.npz.*IDX"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_mnist(tmp_path)
    (tmp_path / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_mnist(tmp_path)
    np.savez(tmp_path / "other.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="lacks x_train/y_train"):
        load_mnist(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="val")


# --------------------------------------------------------------------------------------- CIFAR-10


def _jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tf.addfile(info, io.BytesIO(payload))


def _synthetic_jpeg_archive(path: Path, per_class: dict[str, int]) -> None:
    with tarfile.open(path, "w:xz") as tf:
        for split, n in per_class.items():
            for c, name in enumerate(CIFAR10_CLASSES[:3]):
                for i in range(n):
                    flat = np.full((32, 32, 3), 40 * c + 10 * i, np.uint8)  # JPEG keeps flat images exact
                    _add(tf, f"{split}/{name}/{i:04d}.jpg", _jpeg(flat))


def test_cifar_jpeg_archive_and_cache(tmp_path):
    archive = tmp_path / "cifar10-jpeg-q75.tar.xz"
    _synthetic_jpeg_archive(archive, {"train": 2, "test": 1})
    cache = tmp_path / "cache"
    x, y = load_cifar10(archive, split="train", cache_dir=cache)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(x[3], torch.full((3, 32, 32), (40 + 10) / 127.5 - 1), atol=2 / 127.5)
    assert len(list(cache.glob("*-train.npz"))) == 1 and not list(cache.glob(".*tmp"))
    x2, y2 = load_cifar10(tmp_path, split="train", cache_dir=cache)  # folder + cache hit
    assert torch.equal(x, x2) and torch.equal(y, y2)
    xt, yt = load_cifar10(archive, split="test", cache_dir=cache)
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == [0, 1, 2]


def test_cifar_default_cache_uses_env(tmp_path, monkeypatch):
    archive = tmp_path / "data" / "cifar10-jpeg-q75.tar.xz"
    archive.parent.mkdir()
    _synthetic_jpeg_archive(archive, {"test": 1})
    monkeypatch.setenv("DGFLOW_CACHE", str(tmp_path / "envcache"))
    load_cifar10(archive, split="test")
    assert len(list((tmp_path / "envcache").glob("*-test.npz"))) == 1


def _batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), b"labels": rng.integers(0, 10, n).tolist()}


@pytest.mark.parametrize("as_tarball", [False, True])
def test_cifar_python_version(tmp_path, as_tarball):
    batches = {f"data_batch_{i}": _batch(4, i) for i in range(1, 6)} | {"test_batch": _batch(3, 9)}
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, b in batches.items():
        (folder / name).write_bytes(pickle.dumps(b))
    root = tmp_path
    if as_tarball:
        with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tf:
            tf.add(folder, arcname="cifar-10-batches-py")
        root = tmp_path / "cifar-10-python.tar.gz"
    x, y = load_cifar10(root, split="train")
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    want = torch.from_numpy(batches["data_batch_2"][b"data"][0].reshape(3, 32, 32)).float() / 127.5 - 1
    assert torch.equal(x[4], want)
    xt, yt = load_cifar10(folder, split="test")  # the batches folder itself
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == batches["test_batch"][b"labels"]


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-jpeg-q75.tar.xz.*cifar-10-batches-py"):
        load_cifar10(tmp_path)
    bad = tmp_path / "cifar10-jpeg-q75.tar.xz"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 JPEG tar"):
        load_cifar10(bad, cache_dir=tmp_path / "c")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        load_cifar10(folder, split="test")
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(folder, split="train")


@pytest.mark.skipif(not CIFAR.is_file(), reason=f"shared CIFAR-10 copy not found at {CIFAR}")
def test_cifar_shared_archive_test_split(tmp_path):
    start = time.perf_counter()
    x, y = load_cifar10(SHARED, split="test", cache_dir=tmp_path)  # decodes only test/ (~4 s)
    assert time.perf_counter() - start < 60
    assert x.shape == (10000, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(y.bincount(), torch.full((10,), 1000))
    x2, _ = load_cifar10(CIFAR, split="test", cache_dir=tmp_path)  # cached
    assert torch.equal(x, x2)
