"""`dgflow train gan|vae|classifier|corrector` end to end at toy size on the shared MNIST copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgflow.cli import main
from dgflow.zoo import load_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="shared MNIST copy not found")


def test_train_gan_vae_corrector_and_classifier_from_the_cli(tmp_path):
    common = ["--dataset", "mnist", "--data", str(SHARED), "--width", "4", "--z-dim", "8", "--batch-size", "8",
              "--quiet"]
    assert main(["train", "gan", "--out", str(tmp_path / "gan"), "--iterations", "2", *common]) == 0
    assert main(["train", "vae", "--out", str(tmp_path / "vae"), "--iterations", "2", *common]) == 0
    assert main(["train", "corrector", "--gan", str(tmp_path / "gan" / "checkpoint.pt"), "--target",
                 str(tmp_path / "vae" / "checkpoint.pt"), "--out", str(tmp_path / "corr"), "--iterations", "2",
                 "--batch-size", "8", "--quiet"]) == 0
    gan, meta = load_checkpoint(tmp_path / "gan" / "checkpoint.pt")
    assert set(gan) == {"generator", "discriminator"} and meta["z_dim"] == 8
    assert gan["generator"](torch.randn(3, 8)).shape == (3, 1, 28, 28)
    corr, _ = load_checkpoint(tmp_path / "corr" / "checkpoint.pt")
    x = gan["generator"](torch.randn(3, 8))
    assert corr["corrector"](x).shape == (3,)
    # the corrector starts from D_phi's weights: same architecture, different (fine-tuned) values
    assert any(not torch.equal(p, q) for p, q in zip(corr["corrector"].parameters(), gan["discriminator"].parameters()))
    assert (tmp_path / "gan" / "samples" / "iter_0000002.png").exists()


def test_unknown_dataset_and_pair_are_named(tmp_path, capsys):
    from dgflow.training.images import train_image_gan

    with pytest.raises(ValueError, match="unknown GAN 'stylegan'"):
        train_image_gan("mnist", SHARED, tmp_path, pair="stylegan")
    with pytest.raises(ValueError, match="unknown image dataset 'svhn'"):
        train_image_gan("svhn", SHARED, tmp_path)
