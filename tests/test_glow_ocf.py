"""Glow (log-det against autograd's Jacobian, exact inverse) and OCF-GAN (CF distance by hand, training)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dgflow.cli import main
from dgflow.zoo import build_model, latent_shape, load_checkpoint
from dgflow.zoo.glow import Glow
from dgflow.zoo.ocf import OCFCritic, ocf_distance

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _random_glow(**kw) -> Glow:
    """A tiny Glow whose every layer is non-trivial (actnorm initialised, couplings not the identity)."""
    torch.manual_seed(0)
    flow = Glow(channels=1, image_size=4, width=4, levels=2, couplings=2, **kw).double()
    flow.train()
    flow.log_prob(torch.rand(16, 1, 4, 4, dtype=torch.float64) * 1.8 - 0.9)  # actnorm's data-dependent init
    flow.eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_glow_logdet_matches_autograd_jacobian():
    flow = _random_glow()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 1.6 - 0.8
    jac = torch.autograd.functional.jacobian(lambda v: flow.inverse(v.view(1, 1, 4, 4)).flatten(), x.flatten())
    sign, logabsdet = torch.linalg.slogdet(jac)
    z = flow.inverse(x)
    log_pz = -0.5 * (z**2).sum() - 0.5 * z.numel() * math.log(2 * math.pi)
    assert float(sign) != 0
    assert float((flow.log_prob(x)[0] - log_pz).detach()) == pytest.approx(float(logabsdet), abs=1e-8)


def test_glow_inverse_of_forward_is_identity():
    flow = _random_glow()
    z = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    assert torch.allclose(flow.inverse(flow(z)), z, atol=1e-9)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64) * 1.6 - 0.8
    assert torch.allclose(flow(flow.inverse(x)), x, atol=1e-9)
    model = build_model("glow", channels=1, image_size=28, width=8, levels=2, couplings=2)
    assert latent_shape(model) == (1, 28, 28)
    cold = _random_glow(temperature=0.7)  # the generator direction samples flow(0.7 z); inverse undoes it
    assert torch.allclose(cold(z), flow(0.7 * z), atol=1e-9) and torch.allclose(cold.inverse(cold(z)), z, atol=1e-9)
    assert torch.allclose(cold.log_prob(x), flow.log_prob(x), atol=1e-9)  # log_prob: the trained density
    with pytest.raises(ValueError, match="temperature"):
        Glow(channels=1, image_size=4, temperature=1.5)


def test_ocf_distance_matches_hand_computation():
    real = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    fake = torch.tensor([[1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # t1 = (1, 0): phases real (0, 2), fake 1;  t2 = (0.5, 0.5): phases real (0.5, 0.5), fake 1
    d1 = (math.cos(0) + math.cos(2)) / 2 - math.cos(1), (math.sin(0) + math.sin(2)) / 2 - math.sin(1)
    d2 = math.cos(0.5) - math.cos(1), math.sin(0.5) - math.sin(1)
    expected = 0.5 * (d1[0] ** 2 + d1[1] ** 2 + d2[0] ** 2 + d2[1] ** 2)
    assert float(ocf_distance(real, fake, t)) == pytest.approx(expected, rel=1e-6)
    assert float(ocf_distance(real, real, t)) == 0.0
    with pytest.raises(ValueError, match="frequencies"):
        ocf_distance(real, fake, torch.ones(3, 5))


def test_ocf_critic_frequencies_scale_and_gradient():
    critic = OCFCritic(channels=1, image_size=28, width=4, feature_dim=6, num_frequencies=5, sigma=2.0)
    t = critic.frequencies(torch.Generator().manual_seed(0))
    eps = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t, 2.0 * eps)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    loss = ocf_distance(critic(x), critic(-x), t)
    loss.backward()
    assert critic.log_sigma.grad is not None and critic.log_sigma.grad != 0
    with pytest.raises(ValueError, match="num_frequencies"):
        OCFCritic(channels=1, image_size=28, num_frequencies=0)


def test_ocf_critic_sigma_escapes_weight_clipping(tmp_path):
    """Li et al.'s weight clipping holds for the features, not for the learned frequency scale."""
    from dgflow.training.gan import GANTraining, train_gan

    torch.manual_seed(0)
    generator = build_model("ocf_generator", channels=1, image_size=28, z_dim=4, width=4)
    critic = OCFCritic(channels=1, image_size=28, width=4, feature_dim=6, sigma=2.0)
    data = torch.rand(32, 1, 28, 28) * 2 - 1
    train_gan(generator, critic, data, 4, GANTraining(loss="ocf", clip=0.01, iterations=2, batch_size=8, n_dis=2),
              tmp_path, progress=False)
    assert max(float(p.abs().max()) for n, p in critic.named_parameters() if n != "log_sigma") <= 0.01
    assert float(critic.log_sigma) == pytest.approx(math.log(2.0), abs=0.01)  # moved by Adam, never clipped


@pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="shared MNIST copy not found")
def test_train_ocf_gan_and_glow_and_their_correctors_from_the_cli(tmp_path):
    common = ["--dataset", "mnist", "--data", str(SHARED), "--batch-size", "8", "--quiet", "--width", "4"]
    assert main(["train", "gan", "--out", str(tmp_path / "gan"), "--iterations", "2", "--z-dim", "8", *common]) == 0
    assert main(["train", "gan", "--pair", "ocf", "--out", str(tmp_path / "ocf"), "--iterations", "2",
                 "--z-dim", "8", *common]) == 0
    assert main(["train", "flow", "--arch", "glow", "--out", str(tmp_path / "glow"), "--iterations", "2",
                 "--couplings", "1", *common]) == 0
    ocf, meta = load_checkpoint(tmp_path / "ocf" / "checkpoint.pt")
    assert meta["training"]["loss"] == "ocf" and isinstance(ocf["discriminator"], OCFCritic)
    glow, meta = load_checkpoint(tmp_path / "glow" / "checkpoint.pt")
    assert isinstance(glow["generator"], Glow) and 0 < meta["test_bits_per_dim"] < 20
    assert all(bool(m.initialized) for m in glow["generator"].modules() if hasattr(m, "initialized"))
    for target in ("ocf", "glow"):
        assert main(["train", "corrector", "--gan", str(tmp_path / "gan" / "checkpoint.pt"), "--target",
                     str(tmp_path / target / "checkpoint.pt"), "--out", str(tmp_path / f"{target}-corr"),
                     "--iterations", "2", "--batch-size", "8", "--quiet"]) == 0
        corr, _ = load_checkpoint(tmp_path / f"{target}-corr" / "checkpoint.pt")
        assert corr["corrector"](torch.zeros(2, 1, 28, 28)).shape == (2,)
