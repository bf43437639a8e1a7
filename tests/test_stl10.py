"""STL-10 from its binary format: a small synthetic file written the way the dataset stores it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgflow.data import STL10_CLASSES, load_stl10


def _write_stl10(folder, split: str, images: np.ndarray, labels: np.ndarray | None) -> None:
    """``images`` uint8 ``[N, 3, 96, 96]`` (row-major, as displayed) -> column-major ``<split>_X.bin``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tofile(folder / f"{split}_X.bin")
    if labels is not None:
        labels.astype(np.uint8).tofile(folder / f"{split}_y.bin")


def test_stl10_reads_column_major_images_resizes_to_48_and_shifts_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)
    images[0, 0, 0, :] = 255  # a bright top row in the red channel: survives only the right transpose
    images[0, 0, 1:, :] = 0
    _write_stl10(tmp_path / "stl10_binary", "train", images, np.array([1, 10, 4]))
    x, y = load_stl10(tmp_path, split="train", chunk=2)  # chunks of 2: the chunked read is exercised
    assert x.shape == (3, 3, 48, 48) and x.dtype == torch.float32
    assert y.tolist() == [0, 9, 3] and len(STL10_CLASSES) == 10
    # 48x48 pixel (i, j) is the mean of the 2x2 block (2i..2i+1, 2j..2j+1), in [-1, 1]
    blocks = images.reshape(3, 3, 48, 2, 48, 2).astype(np.float64).mean(axis=(3, 5))
    assert np.allclose(x.numpy(), blocks / 127.5 - 1, atol=1e-6)
    assert np.allclose(x[0, 0, 0].numpy(), (255 / 2) / 127.5 - 1) and float(x[0, 0, 1:].max()) == -1.0
    full, _ = load_stl10(tmp_path / "stl10_binary", split="train", image_size=96)
    assert np.allclose(full.numpy(), images / 127.5 - 1, atol=1e-6)


def test_stl10_unlabeled_and_bad_files_are_named(tmp_path):
    folder = tmp_path / "stl10_binary"
    _write_stl10(folder, "unlabeled", np.zeros((2, 3, 96, 96), np.uint8), None)
    x, y = load_stl10(tmp_path, split="unlabeled")
    assert x.shape == (2, 3, 48, 48) and y.tolist() == [-1, -1]
    with pytest.raises(FileNotFoundError, match="test_X.bin"):
        load_stl10(tmp_path, split="test")
    (folder / "test_X.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not a whole number of 3x96x96"):
        load_stl10(tmp_path, split="test")
    _write_stl10(folder, "test", np.zeros((2, 3, 96, 96), np.uint8), np.array([1, 11]))
    with pytest.raises(ValueError, match="labels in 1..10"):
        load_stl10(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="STL-10"):
        load_stl10(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_stl10(tmp_path, split="valid")


def test_sndcgan_and_classifier_train_on_stl10_at_48(tmp_path):
    """The 48x48 networks (bottom 6x6) train from the CLI on an STL-10 folder."""
    from dgflow.cli import main
    from dgflow.zoo import load_checkpoint

    rng = np.random.default_rng(1)
    for split, n in (("train", 20), ("test", 10)):
        _write_stl10(tmp_path / "stl10_binary", split, rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8),
                     rng.integers(1, 11, n))
    common = ["--dataset", "stl10", "--data", str(tmp_path), "--width", "4", "--batch-size", "4", "--quiet"]
    assert main(["train", "gan", "--out", str(tmp_path / "gan"), "--iterations", "1", "--z-dim", "8", *common]) == 0
    assert main(["train", "classifier", "--out", str(tmp_path / "clf"), "--epochs", "1", *common]) == 0
    gan, _ = load_checkpoint(tmp_path / "gan" / "checkpoint.pt")
    x = gan["generator"](torch.randn(2, 8))
    assert x.shape == (2, 3, 48, 48) and gan["discriminator"](x).shape == (2,)
    clf, meta = load_checkpoint(tmp_path / "clf" / "checkpoint.pt")
    assert clf["classifier"](x).shape == (2, 10) and 0 <= meta["test_accuracy"] <= 1
