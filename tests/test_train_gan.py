"""The image GAN trainer: every loss, conditional, DDLS in the loop, TensorBoard logs, resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dgflow.training import GANTraining, read_scalars, train_gan
from dgflow.zoo import load_checkpoint


class TinyG(nn.Module):
    def __init__(self, z_dim=4, classes=0):
        super().__init__()
        self.emb = nn.Embedding(classes, z_dim) if classes else None
        self.net = nn.Sequential(nn.Linear(z_dim, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 64), nn.Tanh())

    def forward(self, z, y=None):
        if self.emb is not None:
            z = z + self.emb(y)
        return self.net(z).view(-1, 1, 8, 8)


class TinyD(nn.Module):
    def __init__(self, classes=0):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.emb = nn.Embedding(classes, 64) if classes else None

    def forward(self, x, y=None):
        out = self.net(x)[:, 0]
        if self.emb is not None:  # projection term
            out = out + (self.emb(y) * x.flatten(1)).sum(1)
        return out


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    return torch.tanh(torch.randn(n, 1, 8, 8, generator=g)), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("loss", ["hinge", "ns", "wgan-gp"])
def test_each_loss_trains_logs_and_checkpoints(tmp_path, loss):
    x, _ = _data()
    g, d = TinyG(), TinyD()
    s = GANTraining(loss=loss, iterations=6, batch_size=16, n_dis=2, log_every=2, sample_every=3, checkpoint_every=3)
    log = train_gan(g, d, x, 4, s, tmp_path, progress=False)
    assert [e["iteration"] for e in log] == [2, 4, 6]
    assert all(torch.isfinite(torch.tensor([e["loss_d"], e["loss_g"]])).all() for e in log)
    scalars = read_scalars(tmp_path / "tensorboard")
    assert [step for step, _ in scalars["train/loss_d"]] == [2, 4, 6]
    assert scalars["train/loss_g"][-1][1] == pytest.approx(log[-1]["loss_g"], rel=1e-6)
    assert (tmp_path / "samples" / "iter_0000006.png").exists()
    assert not g.training and not d.training


def test_resume_continues_from_the_checkpoint(tmp_path):
    x, _ = _data()
    s = GANTraining(iterations=4, batch_size=16, n_dis=1, log_every=1, sample_every=100, checkpoint_every=2)
    torch.manual_seed(0)
    g, d = TinyG(), TinyD()
    full = train_gan(g, d, x, 4, s, tmp_path / "full", progress=False)
    torch.manual_seed(0)
    g2, d2 = TinyG(), TinyD()
    train_gan(g2, d2, x, 4, GANTraining(**{**s.__dict__, "iterations": 2}), tmp_path / "part", progress=False)
    torch.manual_seed(1)  # resuming must not depend on fresh initial weights or the global RNG
    g3, d3 = TinyG(), TinyD()
    resumed = train_gan(g3, d3, x, 4, s, tmp_path / "part", progress=False)
    assert [e["iteration"] for e in resumed] == [1, 2, 3, 4]
    for a, b in zip(full, resumed):
        assert a["loss_d"] == pytest.approx(b["loss_d"], rel=1e-5, abs=1e-6)
    for p, q in zip(g.parameters(), g3.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_conditional_training_with_ddls_in_the_loop(tmp_path):
    x, y = _data()
    g, d = TinyG(classes=3), TinyD(classes=3)
    s = GANTraining(iterations=2, batch_size=8, n_dis=1, ddls_steps=3, log_every=1, sample_every=2, checkpoint_every=2)
    meta = {"generator": ("tiny_g", {}), "discriminator": ("tiny_d", {})}
    log = train_gan(g, d, x, 4, s, tmp_path, labels=y, models_meta=meta, progress=False)
    assert len(log) == 2
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["meta"]["conditional"] and ck["meta"]["training"]["ddls_steps"] == 3
    assert ck["models"]["generator"]["arch"] == "tiny_g"
    with pytest.raises(ValueError, match="unknown architecture 'tiny_g'"):
        load_checkpoint(tmp_path / "checkpoint.pt")  # not a registered architecture: a clear error


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="loss must be one of"):
        GANTraining(loss="lsgan")
    with pytest.raises(ValueError, match="n_dis must be >= 1"):
        GANTraining(n_dis=0)
