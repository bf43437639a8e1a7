"""Image architectures of the zoo: shapes on MNIST and CIFAR-10, checkpoints, the VAE's ELBO, the
flow's exact inverse and log-likelihood, conditional models, refinement, spectral-norm warm-up.

Every network is built with small widths so the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

import dgflow
from dgflow.zoo import ARCHITECTURES, build_model, load_checkpoint, save_checkpoint, warm_up_spectral_norm
from dgflow.zoo.images import spectral_norm_layers, spectral_norm_sigma
from dgflow.zoo.mmd import mmd_loss

torch.set_num_threads(1)

DATASETS = {"mnist": dict(channels=1, image_size=28), "cifar10": dict(channels=3, image_size=32)}
SMALL = {
    "dcgan_generator": dict(z_dim=8, width=4),
    "sndcgan_discriminator": dict(width=4),
    "wgangp_critic": dict(width=4),
    "resnet_generator": dict(z_dim=8, width=8),
    "resnet_discriminator": dict(width=8),
    "cond_dcgan_generator": dict(z_dim=8, width=4, embed_dim=4),
    "cond_sndcgan_discriminator": dict(width=4),
    "conv_vae": dict(z_dim=8, width=4),
    "realnvp": dict(width=8, couplings=2),
    "mmd_generator": dict(z_dim=8, width=4),
    "mmd_critic": dict(width=4, feature_dim=6),
    "classifier": dict(width=4, feature_dim=16),
    "glow": dict(width=8, couplings=2),
    "ocf_generator": dict(z_dim=8, width=4),
    "ocf_critic": dict(width=4, feature_dim=6),
}
GENERATORS = {"dcgan_generator", "resnet_generator", "cond_dcgan_generator", "conv_vae", "mmd_generator", "ocf_generator"}
DISCRIMINATORS = {"sndcgan_discriminator", "wgangp_critic", "resnet_discriminator", "cond_sndcgan_discriminator"}
B = 3


def config(arch: str, dataset: str) -> dict:
    return {**DATASETS[dataset], **SMALL[arch]}


def inputs(arch: str, cfg: dict, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The call arguments of ``arch``: latents for generators, images in [-1, 1] otherwise, plus labels."""
    g = torch.Generator().manual_seed(seed)
    image = (B, cfg["channels"], cfg["image_size"], cfg["image_size"])
    if arch in GENERATORS:
        first = torch.randn(B, cfg["z_dim"], generator=g)
    elif arch in ("realnvp", "glow"):
        first = torch.randn(*image, generator=g)
    else:
        first = torch.rand(*image, generator=g) * 2 - 1
    return (first, torch.tensor([0, 3, 9])) if arch.startswith("cond_") else (first,)


def expected_shape(arch: str, cfg: dict) -> tuple[int, ...]:
    if arch in GENERATORS or arch in ("realnvp", "glow"):
        return (B, cfg["channels"], cfg["image_size"], cfg["image_size"])
    return {"mmd_critic": (B, cfg.get("feature_dim", 0)), "ocf_critic": (B, cfg.get("feature_dim", 0)),
            "classifier": (B, 10)}.get(arch, (B,))


def randomize_(model: torch.nn.Module, scale: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter (the flow's couplings start as the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def test_every_image_architecture_has_a_test_config():
    # the diffusion networks take (x, sigma): tested in test_diffusion_train_run.py
    diffusion = {"mlp_denoiser", "unet_denoiser", "mlp_time_discriminator", "conv_time_discriminator",
                 "classifier_time_discriminator"}
    image_archs = set(ARCHITECTURES) - {"mlp_generator", "mlp_discriminator", "text_generator", "text_critic"} - diffusion
    assert image_archs == set(SMALL)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("arch", sorted(SMALL))
def test_output_shapes(arch, dataset):
    cfg = config(arch, dataset)
    torch.manual_seed(0)
    model = build_model(arch, **cfg).eval()
    with torch.no_grad():
        out = model(*inputs(arch, cfg))
    assert out.shape == expected_shape(arch, cfg)
    assert torch.isfinite(out).all()
    if arch in GENERATORS:
        assert out.abs().max() <= 1  # tanh output: images in [-1, 1]


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_extra_outputs(dataset):
    vae = build_model("conv_vae", **config("conv_vae", dataset))
    x = inputs("classifier", DATASETS[dataset])[0]
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (B, 8)
    clf = build_model("classifier", **config("classifier", dataset))
    assert clf.features(x).shape == (B, 16)


@pytest.mark.parametrize("arch", sorted(DISCRIMINATORS))
def test_discriminators_give_density_ratio_logits(arch):
    cfg = config(arch, "cifar10")
    d = build_model(arch, **cfg).eval()
    args = inputs(arch, cfg)
    ratio = dgflow.DensityRatio(d)
    with torch.no_grad():
        out = ratio(*args)
    assert out.shape == (B,)


def test_wrong_shapes_name_the_fix():
    d = build_model("sndcgan_discriminator", **config("sndcgan_discriminator", "mnist"))
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\].*channels/image_size"):
        d(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="image_size must be 28"):
        build_model("dcgan_generator", image_size=64)
    with pytest.raises(ValueError, match="levels must be between 1 and 2"):
        build_model("realnvp", channels=1, image_size=28, levels=3)
    g = build_model("cond_dcgan_generator", **config("cond_dcgan_generator", "mnist"))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        g(torch.zeros(2, 8), torch.tensor([0, 10]))


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_checkpoint_round_trip(arch, tmp_path):
    cfg = config(arch, "mnist")
    torch.manual_seed(1)
    model = randomize_(build_model(arch, **cfg), scale=0.02).eval()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"model": (arch, cfg, model)}, meta={"dataset": "mnist"})
    models, meta = load_checkpoint(path)
    loaded = models["model"]
    assert type(loaded) is type(model) and not loaded.training and meta == {"dataset": "mnist"}
    args = inputs(arch, cfg)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), model(*args), rtol=0, atol=0)


def test_checkpoint_with_mismatched_config_is_refused(tmp_path):
    cfg = config("sndcgan_discriminator", "cifar10")
    model = build_model("sndcgan_discriminator", **cfg)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"discriminator": ("sndcgan_discriminator", {**cfg, "width": 8}, model)})
    with pytest.raises(ValueError, match=r"does not match the SNDCGANDiscriminator architecture: shape mismatches"
                                         r".*settings it was trained with"):
        load_checkpoint(path)


# ------------------------------------------------------------------------------ VAE


def test_vae_loss_is_finite_and_decreases():
    torch.manual_seed(0)
    vae = build_model("conv_vae", **config("conv_vae", "mnist"))
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = vae.loss(x)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05 * abs(losses[0])


# ------------------------------------------------------------------------------ flow


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_flow_is_invertible_and_log_prob_finite(dataset):
    torch.manual_seed(0)
    flow = randomize_(build_model("realnvp", **config("realnvp", dataset)), scale=0.05).eval()
    z = inputs("realnvp", config("realnvp", dataset))[0]
    with torch.no_grad():
        x = flow(z)
        torch.testing.assert_close(flow.inverse(x), z, rtol=0, atol=1e-4)
        lp = flow.log_prob(x)
    assert lp.shape == (B,) and torch.isfinite(lp).all()


def test_flow_log_prob_matches_brute_force_jacobian():
    torch.manual_seed(0)
    flow = randomize_(build_model("realnvp", channels=1, image_size=4, width=4, levels=2, couplings=2).double(),
                      scale=0.2).eval()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 1.8 - 0.9
    jac = torch.autograd.functional.jacobian(lambda v: flow.inverse(v.view(1, 1, 4, 4)).flatten(), x.flatten())
    z = flow.inverse(x).flatten()
    expected = -0.5 * (z**2).sum() - 8 * math.log(2 * math.pi) + torch.linalg.slogdet(jac).logabsdet
    torch.testing.assert_close(flow.log_prob(x)[0], expected, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------ MMD


def test_mmd_loss():
    torch.manual_seed(0)
    a, b = torch.randn(16, 6), torch.randn(16, 6) + 2
    assert float(mmd_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(mmd_loss(a, b)) > 0.1
    assert float(mmd_loss(a, b, biased=False)) < float(mmd_loss(a, b))
    with pytest.raises(ValueError, match=r"\[N, k\] and \[M, k\]"):
        mmd_loss(a, torch.randn(4, 3))


# ------------------------------------------------------------------------------ refinement


def test_conditional_models_refine_with_labels():
    cfg_g, cfg_d = config("cond_dcgan_generator", "mnist"), config("cond_sndcgan_discriminator", "mnist")
    torch.manual_seed(0)
    g, d = build_model("cond_dcgan_generator", **cfg_g), build_model("cond_sndcgan_discriminator", **cfg_d)
    z, y = torch.randn(4, 8), torch.tensor([1, 2, 3, 1])
    out = dgflow.refine(g, d, z, labels=y, method="dgflow", steps=2, progress=False)
    assert out.x.shape == (4, 1, 28, 28) and out.z.shape == z.shape and torch.isfinite(out.x).all()


@pytest.mark.parametrize("generator", ["dcgan_generator", "conv_vae"])
def test_refine_runs_with_the_sndcgan_discriminator(generator):
    torch.manual_seed(0)
    g = build_model(generator, **config(generator, "cifar10"))
    d = build_model("sndcgan_discriminator", **config("sndcgan_discriminator", "cifar10"))
    z = torch.randn(4, 8)
    out = dgflow.refine(g, d, z, method="dgflow", steps=2, progress=False)
    assert out.x.shape == (4, 3, 32, 32) and torch.isfinite(out.x).all()
    assert not torch.equal(out.z, z)


# ------------------------------------------------------------------------------ spectral norm


@pytest.mark.parametrize("use_forward", [False, True])
def test_spectral_norm_warm_up_converges(use_forward):
    torch.manual_seed(0)
    d = build_model("sndcgan_discriminator", **config("sndcgan_discriminator", "mnist")).eval()
    layers = spectral_norm_layers(d)
    assert len(layers) == 8  # 7 convs + the linear
    with torch.no_grad():  # u and v as if loaded from elsewhere: not power-iterated for these weights
        for m in layers:
            sn = m.parametrizations["weight"][0]
            sn._u.copy_(torch.nn.functional.normalize(torch.randn_like(sn._u), dim=0))
            sn._v.copy_(torch.nn.functional.normalize(torch.randn_like(sn._v), dim=0))

    def worst_error() -> float:
        return max(float(abs(est / exact - 1)) for est, exact in map(spectral_norm_sigma, layers))

    assert worst_error() > 0.05
    n = warm_up_spectral_norm(d, (2, 1, 28, 28) if use_forward else None, iterations=100)
    assert n == 8 and not any(m.training for m in d.modules())
    assert worst_error() < 1e-3
