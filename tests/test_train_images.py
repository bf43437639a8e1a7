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


def test_train_flow_and_mmdgan_and_their_correctors(tmp_path):
    """The models without a usable discriminator: RealNVP and MMD-GAN, each with a corrector of D_phi."""
    common = ["--dataset", "mnist", "--data", str(SHARED), "--batch-size", "8", "--quiet"]
    assert main(["train", "gan", "--out", str(tmp_path / "gan"), "--iterations", "2", "--width", "4",
                 "--z-dim", "8", *common]) == 0
    assert main(["train", "flow", "--out", str(tmp_path / "flow"), "--iterations", "3", "--width", "4",
                 "--couplings", "2", *common]) == 0
    assert main(["train", "gan", "--pair", "mmd", "--out", str(tmp_path / "mmd"), "--iterations", "2",
                 "--width", "4", "--z-dim", "8", *common]) == 0
    flow, meta = load_checkpoint(tmp_path / "flow" / "checkpoint.pt")
    assert meta["training"] == "flow" and 0 < meta["test_bits_per_dim"] < 20
    assert flow["generator"].latent_shape == (1, 28, 28)
    mmd, meta = load_checkpoint(tmp_path / "mmd" / "checkpoint.pt")
    assert meta["training"]["loss"] == "mmd" and meta["training"]["clip"] == 0.01
    # Li et al.'s weight clipping holds after training
    assert max(p.abs().max().item() for p in mmd["discriminator"].parameters()) <= 0.01 + 1e-7
    assert mmd["discriminator"](torch.zeros(2, 1, 28, 28)).shape[0] == 2
    for target in ("flow", "mmd"):
        assert main(["train", "corrector", "--gan", str(tmp_path / "gan" / "checkpoint.pt"), "--target",
                     str(tmp_path / target / "checkpoint.pt"), "--out", str(tmp_path / f"{target}-corr"),
                     "--iterations", "2", "--batch-size", "8", "--quiet"]) == 0
        corr, _ = load_checkpoint(tmp_path / f"{target}-corr" / "checkpoint.pt")
        assert corr["corrector"](torch.zeros(2, 1, 28, 28)).shape == (2,)
