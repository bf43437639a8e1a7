"""Training the DG pieces, the zoo networks, and ``dgflow sample --config`` (outputs, resume, errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgflow.cli import main
from dgflow.diffusion import guide
from dgflow.config import load_sample_config, validate_sample_config
from dgflow.runs.sample import run_sample
from dgflow.training.diffusion import train_diffusion, train_time_discriminator
from dgflow.zoo import build_model, load_checkpoint, save_checkpoint

M, S, M_FAKE, S_FAKE = torch.tensor([1.0, -0.5]), 0.5, torch.tensor([0.0, 0.0]), 1.0


pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(m, s, n, seed):
    return m + s * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def exact_log_ratio(x, sigma):
    def log_p(m, s):
        var = (s**2 + sigma**2)[:, None]
        return (-0.5 * (x - m) ** 2 / var - 0.5 * torch.log(var)).sum(-1)

    return log_p(M, S) - log_p(M_FAKE, S_FAKE)


def test_time_discriminator_learns_the_noisy_log_ratio():
    """BCE at the optimum gives logit = log p_data(x; sigma) / p_model(x; sigma); after a short training
    the learnt logit must track the exact one (correlation > 0.9 at two noise levels; an untrained net
    scores ~0, measured after training: ~0.99)."""
    torch.manual_seed(0)
    disc = build_model("mlp_time_discriminator", dim=2, width=64, depth=2)
    log = train_time_discriminator(disc, gaussian(M, S, 4000, 1), gaussian(M_FAKE, S_FAKE, 4000, 2), iterations=400,
                                   batch_size=256, lr=1e-3, progress=False)
    assert log[-1]["accuracy"] > 0.6
    for sigma in (0.1, 1.0):
        x = torch.cat([gaussian(M, S, 500, 3), gaussian(M_FAKE, S_FAKE, 500, 4)])
        x = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        sig = torch.full((len(x),), sigma)
        with torch.no_grad():
            learnt = disc(x, sig)
        exact = exact_log_ratio(x, sig)
        assert np.corrcoef(learnt.numpy(), exact.numpy())[0, 1] > 0.9


def test_edm_training_fits_the_exact_denoiser():
    """On N(m, s^2 I) data the EDM loss is minimised by D = m + s^2/(s^2 + sigma^2)(x - m); after 600
    iterations the MLP is within 0.1 of it (mean abs) at sigma = 0.3 and 1 (an untrained one: ~0.6)."""
    torch.manual_seed(0)
    den = build_model("mlp_denoiser", dim=2, width=64, depth=2)
    log = train_diffusion(den, gaussian(M, S, 5000, 0), iterations=600, batch_size=128, lr=2e-3, progress=False)
    assert log[-1]["loss"] < log[0]["loss"]
    den.eval()
    for sigma in (0.3, 1.0):
        x = gaussian(M, math.sqrt(S**2 + sigma**2), 500, 6)
        sig = torch.full((500,), sigma)
        with torch.no_grad():
            err = (den(x, sig) - (M + S**2 / (S**2 + sigma**2) * (x - M))).abs().mean()
        assert err < 0.1, f"sigma {sigma}: mean abs error {err:.3f}"


@pytest.mark.parametrize("arch, kwargs, shape", [
    ("unet_denoiser", {"width": 8}, (3, 1, 28, 28)),
    ("unet_denoiser", {"width": 8, "channels": 3, "image_size": 32, "n_classes": 10}, (3, 3, 32, 32)),
    ("conv_time_discriminator", {"width": 8, "n_classes": 10}, (3, 1, 28, 28)),
    ("classifier_time_discriminator", {"hidden": 8}, (3, 1, 28, 28)),
])
def test_image_networks_shapes_and_gradients(arch, kwargs, shape):
    model = build_model(arch, **kwargs)
    x = torch.randn(shape, requires_grad=True)
    labels = torch.tensor([0, 3, 9]) if kwargs.get("n_classes") else None
    out = model(x, torch.tensor([0.01, 1.0, 50.0]), labels)
    assert out.shape == ((3,) if "discriminator" in arch else shape)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all()
    if arch == "classifier_time_discriminator":  # the classifier's body is frozen, the head trains
        assert not any(p.requires_grad for p in model.features.parameters())
        assert any(p.requires_grad for p in model.head1.parameters())
    with pytest.raises(ValueError, match="takes images shaped"):
        model(torch.randn(2, 1, 16, 16), torch.ones(2))


def test_fourier_features_are_saved_with_the_weights():
    a = build_model("mlp_time_discriminator", fourier=8, fourier_scale=5.0)
    assert a.fourier_B.shape == (2, 4) and "fourier_B" in a.state_dict()
    b = build_model("mlp_time_discriminator", fourier=8, fourier_scale=5.0)
    b.load_state_dict(a.state_dict())
    x, s = torch.randn(4, 2), torch.ones(4)
    assert torch.equal(a(x, s), b(x, s))
    with pytest.raises(ValueError, match="fourier must be an even"):
        build_model("mlp_time_discriminator", fourier=3)


def test_conditional_models_need_labels():
    with pytest.raises(ValueError, match="class-conditional"):
        build_model("mlp_time_discriminator", n_classes=3)(torch.zeros(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match="class-conditional"):
        build_model("mlp_denoiser", n_classes=3)(torch.zeros(2, 2), torch.ones(2))


# ----------------------------------------------------------------------------------------- runner


@pytest.fixture
def toy_models(tmp_path):
    torch.manual_seed(0)
    den = build_model("mlp_denoiser", dim=2, width=16, depth=2)
    disc = build_model("mlp_time_discriminator", dim=2, width=16, depth=2)
    save_checkpoint(tmp_path / "den.pt", {"denoiser": ("mlp_denoiser", {"dim": 2, "width": 16, "depth": 2}, den)})
    save_checkpoint(tmp_path / "disc.pt",
                    {"discriminator": ("mlp_time_discriminator", {"dim": 2, "width": 16, "depth": 2}, disc)})
    return tmp_path


def _config(tmp_path, **extra):
    return {"denoiser_path": str(tmp_path / "den.pt"), "disc_path": str(tmp_path / "disc.pt"), "dataset": "25gaussians",
            "num_samples": 30, "batch_size": 8, "steps": 6, "S_churn": 5.0, "boosting": True,
            "exp_root": str(tmp_path / "exps"), "name": "run", **extra}


def test_sample_run_writes_outputs_and_resumes_identically(toy_models):
    tmp = toy_models
    cfg = validate_sample_config(_config(tmp))
    run_dir = run_sample(cfg, progress=False)
    for f in ("samples/guided.npz", "samples/unguided.npz", "grid_guided.png", "grid_unguided.png", "metrics.json",
              "metrics.png", "config.yml"):
        assert (run_dir / f).is_file(), f
    first = {v: np.load(run_dir / "samples" / f"{v}.npz")["x"] for v in ("guided", "unguided")}
    assert first["guided"].shape == (30, 2) and not np.array_equal(first["guided"], first["unguided"])
    # the same as dgflow.guide in one call. nn.Linear picks BLAS kernels by batch size, so rows agree
    # to rounding (~1e-7), not bitwise (see conftest.py); the sampler itself is batch-invariant
    # (test_diffusion.py checks bit-identity with batch-invariant models).
    models, _ = load_checkpoint(tmp / "den.pt")
    discs, _ = load_checkpoint(tmp / "disc.pt")
    direct = guide(models["denoiser"], discs["discriminator"], 30, shape=(2,), steps=6, S_churn=5.0, boosting=True,
                   sigma_range=cfg.sigma_range(), progress=False).x
    assert np.allclose(first["guided"], direct.numpy(), atol=1e-5)
    # an interrupted run (a batch file lost) resumes to the same result, whatever the batch size
    batch = sorted((run_dir / "batches" / "guided").glob("ids_*.pt"))[1]
    batch.unlink()
    run_sample(validate_sample_config(_config(tmp, batch_size=3)), progress=False)
    resumed = np.load(run_dir / "samples" / "guided.npz")["x"]
    assert np.allclose(resumed, first["guided"], atol=1e-5)
    kept = np.r_[0:8, 16:30]  # samples of the batches that were not lost are the files' own, bit for bit
    assert np.array_equal(resumed[kept], first["guided"][kept])
    with pytest.raises(ValueError, match="different configuration"):
        run_sample(validate_sample_config(_config(tmp, dg_weight_1st_order=1.0)), progress=False)


def test_sample_files_are_byte_reproducible(toy_models):
    """samples/<variant>.npz holds no time stamp (the zip entries' are fixed), so equal samples give equal
    bytes whenever they are written, as a refine run's samples/step_<k>.npz (one writer, io.write_npz)."""
    import zipfile

    cfg = _config(toy_models, num_samples=8, baseline=False)
    run_dir = run_sample(validate_sample_config(cfg), progress=False)
    with zipfile.ZipFile(run_dir / "samples" / "guided.npz") as zf:
        assert [i.filename for i in zf.infolist()] == ["x.npy", "ids.npy"]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    other = run_sample(validate_sample_config({**cfg, "exp_root": str(toy_models / "other")}), progress=False)
    assert (other / "samples" / "guided.npz").read_bytes() == (run_dir / "samples" / "guided.npz").read_bytes()


def test_sample_cli(toy_models, tmp_path, capsys):
    cfg = tmp_path / "dg.yml"
    import yaml

    cfg.write_text(yaml.safe_dump(_config(toy_models, baseline=False, boosting=False)))
    assert main(["sample", "--config", str(cfg), "--quiet", "--set", "num_samples=10"]) == 0
    assert (toy_models / "exps" / "run" / "samples" / "guided.npz").is_file()
    assert not (toy_models / "exps" / "run" / "samples" / "unguided.npz").exists()
    assert main(["sample", "--config", str(cfg), "--set", "dg_weight_1st_order=abc"]) == 2
    assert "dg_weight_1st_order must be a number" in capsys.readouterr().err


@pytest.mark.parametrize("change, match", [
    ({"unknown_key": 1}, "unknown key"),
    ({"time_min": 0.5, "time_max": 0.1}, "time_min < time_max"),
    ({"steps": 1}, "steps must be a whole number >= 2"),
    ({"disc_path": None}, "needs disc_path"),
    ({"dg_weight_1st_order": 0.0, "boosting": True}, "boosting needs"),
    ({"adapter": "v_prediction"}, "adapter must be 'epsilon_vp' \\(or null\\)"),
    ({"denoiser_path": None}, "denoiser_type .* or denoiser_path"),
])
def test_sample_config_errors(toy_models, change, match):
    with pytest.raises(ValueError, match=match):
        validate_sample_config({**_config(toy_models), **change})


def test_missing_checkpoint_names_the_key(toy_models):
    cfg = validate_sample_config(_config(toy_models, denoiser_path=str(toy_models / "nope.pt")))
    with pytest.raises(FileNotFoundError, match="denoiser_path"):
        run_sample(cfg, progress=False)


def test_shipped_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    configs = sorted(root.glob("dg-*.yml"))
    assert configs
    for path in configs:
        load_sample_config(path)


def test_train_cli_writes_loadable_checkpoints(tmp_path):
    """`dgflow train diffusion` then `dgflow train tdisc` (a few iterations): checkpoints record their architectures."""
    den, disc = tmp_path / "den", tmp_path / "disc"
    assert main(["train", "diffusion", "--dataset", "swissroll", "--out", str(den), "--iterations", "5", "--width", "16",
                 "--quiet"]) == 0
    assert main(["train", "tdisc", "--dataset", "swissroll", "--denoiser", str(den / "checkpoint.pt"), "--out", str(disc),
                 "--iterations", "5", "--fake-samples", "50", "--steps", "4", "--width", "16", "--fourier", "8",
                 "--quiet"]) == 0
    models, meta = load_checkpoint(disc / "checkpoint.pt")
    assert type(models["discriminator"]).__name__ == "MLPTimeDiscriminator" and meta["fake_samples"] == 50
    assert models["discriminator"].fourier_B.shape == (2, 4)
    assert (disc / "train_log.json").is_file()
    assert main(["train", "tdisc", "--dataset", "swissroll", "--denoiser", str(den / "checkpoint.pt"), "--out",
                 str(disc), "--conditional", "--quiet"]) == 2  # an unconditional denoiser: a clear error


def test_sample_run_on_images_conditional(tmp_path):
    """Image runs: uint8 NHWC samples, labels kept, a grid; class-conditional models get labels 0, 1, 2, 0, ..."""
    torch.manual_seed(0)
    cfg_d = {"width": 8, "n_classes": 3}
    save_checkpoint(tmp_path / "den.pt", {"denoiser": ("unet_denoiser", cfg_d, build_model("unet_denoiser", **cfg_d))})
    save_checkpoint(tmp_path / "disc.pt", {"discriminator": ("conv_time_discriminator", cfg_d,
                                                             build_model("conv_time_discriminator", **cfg_d))})
    cfg = validate_sample_config({"denoiser_path": str(tmp_path / "den.pt"), "disc_path": str(tmp_path / "disc.pt"),
                                  "num_samples": 5, "num_classes": 3, "steps": 3, "baseline": False,
                                  "exp_root": str(tmp_path), "name": "img"})
    run_dir = run_sample(cfg, progress=False)
    out = np.load(run_dir / "samples" / "guided.npz")
    assert out["x"].shape == (5, 28, 28, 1) and out["x"].dtype == np.uint8
    assert out["labels"].tolist() == [0, 1, 2, 0, 1]
    assert (run_dir / "grid_guided.png").is_file()
