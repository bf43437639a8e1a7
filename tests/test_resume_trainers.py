"""Every iterative trainer (vae, flow, corrector, diffusion, tdisc; gan in test_checkpointing.py) saves on
SIGINT / SIGTERM, and resuming from that checkpoint gives the same model as an uninterrupted run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from dgflow import io
from dgflow.training import checkpointing
from dgflow.training.checkpointing import Resumable
from dgflow.training.diffusion import train_diffusion, train_diffusion_run, train_tdisc_run
from dgflow.training.images import train_flow, train_image_corrector, train_image_gan, train_vae
from dgflow.zoo import build_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="shared MNIST copy not found")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def signal_at(monkeypatch):
    """``signal_at(k, sig)``: the process sends itself ``sig`` at the end of training iteration ``k``."""
    step = Resumable.step

    def arm(k: int, sig: int = signal.SIGINT) -> None:
        def step_with_signal(self, iteration, *args, **kwargs):
            if iteration == k:
                os.kill(os.getpid(), sig)
            return step(self, iteration, *args, **kwargs)

        monkeypatch.setattr(checkpointing.Resumable, "step", step_with_signal)

    yield arm
    monkeypatch.setattr(checkpointing.Resumable, "step", step)


def state(path: Path) -> dict:
    return io.load_checkpoint_file(path)


def assert_same_models(a: Path, b: Path) -> None:
    ca, cb = state(a), state(b)
    assert ca["training"]["iteration"] == cb["training"]["iteration"]
    for role in ca["models"]:
        for key, value in ca["models"][role]["state_dict"].items():
            torch.testing.assert_close(value, cb["models"][role]["state_dict"][key], rtol=1e-5, atol=1e-6,
                                       msg=lambda m, key=key: f"{role}.{key}: {m}")


def interrupted_then_resumed(run, out: Path, at: int, signal_at, sig: int = signal.SIGINT) -> None:
    signal_at(at, sig)
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match=f"saved iteration {at}"):
        run(out)
    assert signal.getsignal(sig) is before  # the handlers are put back
    assert state(out / "checkpoint.pt")["training"]["iteration"] == at
    signal_at(-1)
    run(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_denoiser_training_interrupted_and_resumed_equals_an_uninterrupted_run(tmp_path, signal_at, sig):
    data = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))

    def run(out: Path) -> list[dict[str, float]]:
        torch.manual_seed(1 if (out / "checkpoint.pt").exists() else 0)  # resuming must not depend on a fresh init
        model = build_model("mlp_denoiser", dim=2, width=8, depth=1)
        ck = Resumable(out / "checkpoint.pt", {"denoiser": ("mlp_denoiser", {"dim": 2, "width": 8, "depth": 1})},
                       every_seconds=None)
        return train_diffusion(model, data, iterations=6, batch_size=16, seed=3, progress=False, log_every=1,
                               checkpoint=ck)

    full = run(tmp_path / "full")
    signal_at(-1)
    interrupted_then_resumed(run, tmp_path / "part", 3, signal_at, sig)
    resumed = state(tmp_path / "part" / "checkpoint.pt")["training"]["log"]
    assert [e["iteration"] for e in resumed] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in resumed] == pytest.approx([e["loss"] for e in full], rel=1e-5)
    assert_same_models(tmp_path / "full" / "checkpoint.pt", tmp_path / "part" / "checkpoint.pt")


def test_diffusion_and_tdisc_runs_resume_and_continue_with_more_iterations(tmp_path, signal_at):
    def diffusion(out: Path, iterations: int = 4) -> Path:
        return train_diffusion_run("25gaussians", out, width=8, iterations=iterations, batch_size=16, progress=False)

    diffusion(tmp_path / "den-full")
    interrupted_then_resumed(diffusion, tmp_path / "den", 2, signal_at)
    assert_same_models(tmp_path / "den-full" / "checkpoint.pt", tmp_path / "den" / "checkpoint.pt")
    diffusion(tmp_path / "den", iterations=5)  # a larger --iterations continues a finished run
    assert state(tmp_path / "den" / "checkpoint.pt")["training"]["iteration"] == 5

    def tdisc(out: Path) -> Path:
        return train_tdisc_run(tmp_path / "den" / "checkpoint.pt", "25gaussians", out, width=8, fake_samples=40,
                               steps=3, iterations=4, batch_size=16, progress=False)

    tdisc(tmp_path / "disc-full")
    interrupted_then_resumed(tdisc, tmp_path / "disc", 2, signal_at)
    assert_same_models(tmp_path / "disc-full" / "checkpoint.pt", tmp_path / "disc" / "checkpoint.pt")


@needs_mnist
def test_vae_flows_and_corrector_resume_to_the_uninterrupted_result(tmp_path, signal_at):
    small = {"dataset": "mnist", "data_root": SHARED, "iterations": 4, "batch_size": 8, "progress": False}
    runs = {
        "vae": lambda out: train_vae(out_dir=out, z_dim=4, width=4, **small),  # also torch's global RNG (reparam.)
        "realnvp": lambda out: train_flow(out_dir=out, width=4, couplings=2, **small),
        "glow": lambda out: train_flow(out_dir=out, width=4, levels=1, couplings=2, arch="glow", **small),
    }
    for name, run in runs.items():
        run(tmp_path / f"{name}-full")
        interrupted_then_resumed(run, tmp_path / name, 2, signal_at)
        assert_same_models(tmp_path / f"{name}-full" / "checkpoint.pt", tmp_path / name / "checkpoint.pt")

    train_image_gan("mnist", SHARED, tmp_path / "gan", z_dim=4, width=4, iterations=1, batch_size=8, n_dis=1,
                    progress=False)

    def corrector(out: Path) -> Path:
        return train_image_corrector(tmp_path / "gan" / "checkpoint.pt", tmp_path / "vae" / "checkpoint.pt", out,
                                     iterations=4, batch_size=8, progress=False)

    corrector(tmp_path / "corr-full")
    interrupted_then_resumed(corrector, tmp_path / "corr", 2, signal_at)
    assert_same_models(tmp_path / "corr-full" / "checkpoint.pt", tmp_path / "corr" / "checkpoint.pt")


def test_a_checkpoint_without_training_state_is_refused(tmp_path):
    from dgflow.zoo import save_checkpoint

    model = build_model("mlp_denoiser", dim=2, width=8, depth=1)
    save_checkpoint(tmp_path / "checkpoint.pt", {"denoiser": ("mlp_denoiser", {"dim": 2, "width": 8, "depth": 1}, model)})
    with pytest.raises(ValueError, match="no training state"):
        train_diffusion(model, torch.randn(10, 2), iterations=2, batch_size=4, progress=False,
                        checkpoint=Resumable(tmp_path / "checkpoint.pt"))


def test_another_trainers_checkpoint_is_refused_by_name(tmp_path):
    train_diffusion_run("25gaussians", tmp_path, width=8, iterations=1, batch_size=8, progress=False)
    disc = build_model("mlp_time_discriminator", dim=2, width=8)
    data = torch.randn(10, 2)
    with pytest.raises(ValueError, match="another kind of training.*discriminator"):
        from dgflow.training.diffusion import train_time_discriminator

        train_time_discriminator(disc, data, data, iterations=2, batch_size=4, progress=False,
                                 checkpoint=Resumable(tmp_path / "checkpoint.pt"))
