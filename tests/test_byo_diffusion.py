"""Diffusion models from other code bases: diffusers / k-diffusion adapters and DG for other samplers.

Closed form (as in test_diffusion.py): data N(m, s^2 I). In the VP convention x_vp = sqrt(a) x0 +
sqrt(1 - a) eps (a = alphas_cumprod[t]) the exact predictions are, with r = x_vp - sqrt(a) m and
q = a s^2 + 1 - a,

    E[eps | x_vp] = sqrt(1 - a) r / q,    E[x0 | x_vp] = m + s^2 sqrt(a) r / q,
    E[v | x_vp] = sqrt(a) E[eps] - sqrt(1 - a) E[x0]          (v = sqrt(a) eps - sqrt(1 - a) x0),

and each adapter must turn its prediction into the exact EDM denoiser m + s^2 / (s^2 + sigma^2) (x - m).
The DG-corrected denoiser D + w sigma^2 grad log(d / (1 - d)) of a wrong Gaussian model with the exact
noisy log-ratio and w = 1 *is* the exact denoiser of the data, so samplers built on it match exactly.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import dgflow
from dgflow.diffusion import edm_sigmas, from_diffusers, from_k_diffusion, guide, guided_denoiser, to_diffusers


from gaussian_diffusion import FULL, M, M_WRONG, S, S_WRONG, TARGET, WRONG, Gaussian, exact_log_ratio  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def latents(n=256, seed=0):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------- a fake diffusers model and scheduler


@dataclasses.dataclass
class FakeOutput:  # diffusers' UNet2DOutput: a dataclass whose field is .sample
    sample: torch.Tensor


class FakeScheduler:
    """The interface from_diffusers reads: .alphas_cumprod and .config.prediction_type."""

    def __init__(self, alphas_cumprod, prediction_type):
        self.alphas_cumprod = alphas_cumprod
        self.config = type("Config", (), {"prediction_type": prediction_type})()


def linear_abar(T=1000):
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)


def cosine_abar(T=1000, s=0.008):  # Nichol & Dhariwal's cosine schedule
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


class GaussianVPNet(nn.Module):
    """Exact epsilon / v / x0 prediction of data N(m, s^2 I); labels only by keyword (class_labels)."""

    def __init__(self, abar, prediction_type, m=M, s=S, tuple_output=False):
        super().__init__()
        self.abar, self.kind, self.tuple_output = abar, prediction_type, tuple_output
        self.m, self.s = torch.as_tensor(m, dtype=torch.float64), float(s)
        self.seen_labels = None

    def forward(self, x_vp, t, *, class_labels=None):
        self.seen_labels = class_labels
        if t.is_floating_point():  # a fractional timestep: interpolate abar in log sigma like the adapter
            lo = t.floor().long().clamp(max=len(self.abar) - 2)
            sig = ((1 - self.abar) / self.abar).sqrt().log()
            log_s = sig[lo] + (t - lo) * (sig[lo + 1] - sig[lo])
            a = 1 / (1 + (2 * log_s).exp())
        else:
            a = self.abar[t]
        a = a[:, None]
        r, q = x_vp - a.sqrt() * self.m, a * self.s**2 + 1 - a
        eps = (1 - a).sqrt() * r / q
        x0 = self.m + self.s**2 * a.sqrt() * r / q
        out = {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[self.kind]
        return (out,) if self.tuple_output else FakeOutput(out)


@pytest.mark.parametrize("schedule", [linear_abar, cosine_abar])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_from_diffusers_gives_the_exact_denoiser(prediction_type, schedule):
    abar = schedule()
    D = from_diffusers(GaussianVPNet(abar, prediction_type), FakeScheduler(abar, prediction_type))
    x = latents(64) * 3
    sig = D.sigmas[torch.randint(len(abar), (64,), generator=torch.Generator().manual_seed(1))]
    assert torch.allclose(D(x, sig), TARGET(x, sig), atol=1e-9)
    # a sigma between two timesteps: the network is asked at the nearest timestep, the result is exact there
    assert torch.allclose(D(x, sig * 1.0001), TARGET(x, sig), atol=1e-9)


def test_from_diffusers_fractional_timesteps_tuple_outputs_and_labels_by_keyword():
    abar = linear_abar()
    net = GaussianVPNet(abar, "v_prediction", tuple_output=True)
    D = from_diffusers(net, FakeScheduler(abar, "epsilon"), prediction_type="v_prediction", timestep="fractional")
    x = latents(32)
    sig = torch.exp(torch.linspace(-3, 3, 32, dtype=torch.float64))  # noise levels between the timesteps
    y = torch.arange(32) % 3
    assert torch.allclose(D(x, sig, y), TARGET(x, sig), atol=1e-9)
    assert torch.equal(net.seen_labels, y)
    with pytest.raises(ValueError, match="prediction_type"):
        from_diffusers(net, FakeScheduler(abar, "flow"))
    with pytest.raises(ValueError, match="alphas_cumprod"):
        from_diffusers(net, object())


def test_wrong_prediction_type_is_not_the_exact_denoiser():
    """The issue's bug: a v-prediction network read as epsilon-prediction is silently wrong."""
    abar = linear_abar()
    D = from_diffusers(GaussianVPNet(abar, "v_prediction"), FakeScheduler(abar, "epsilon"))
    x, sig = latents(64), torch.full((64,), 1.0, dtype=torch.float64)
    assert not torch.allclose(D(x, sig), TARGET(x, sig), atol=1e-2)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_to_diffusers_inverts_from_diffusers(prediction_type):
    abar = cosine_abar()
    sched = FakeScheduler(abar, prediction_type)
    net = GaussianVPNet(abar, prediction_type)
    model = to_diffusers(TARGET, sched)
    x_vp = latents(16)
    for t in (0, 10, 500, 999):
        expect = net(x_vp, torch.full((16,), t)).sample
        assert torch.allclose(model(x_vp, t), expect, atol=1e-8)


# ------------------------------------------------------------------------- DG for other samplers


def test_guided_denoiser_is_the_exact_denoiser_of_the_data():
    guided = guided_denoiser(WRONG, exact_log_ratio, w=1.0, sigma_range=FULL)
    x = torch.tensor(M, dtype=torch.float64) + latents(64)
    sig = torch.exp(torch.linspace(-3, 4, 64, dtype=torch.float64))
    assert exact_log_ratio(x, sig).abs().max() < 10  # moderate log-ratios (no clipping of d near 0 or 1)
    assert torch.allclose(guided(x, sig), TARGET(x, sig), atol=1e-10)


def sample_heun_kdiffusion(model, x, sigmas, extra_args=None):
    """k-diffusion's ``sample_heun`` (s_churn = 0), written out: Karras et al. Algorithm 2."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = (x - denoised) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1] * s_in, **extra_args)
            d_2 = (x_2 - denoised_2) / sigmas[i + 1]
            x = x + (d + d_2) / 2 * dt
    return x


def sample_euler_kdiffusion(model, x, sigmas, extra_args=None):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        d = (x - model(x, sigmas[i] * s_in, **extra_args)) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@pytest.mark.parametrize("w, sigma_range", [(1.0, FULL), (2.0, (0.0447, math.inf)), (0.5, (0.1, 10.0))])
def test_k_diffusion_heun_loop_on_the_guided_denoiser_equals_guide(w, sigma_range):
    z = latents(512)
    sigmas = edm_sigmas(18, 0.002, 80.0, 7.0)
    model = guided_denoiser(WRONG, exact_log_ratio, w=w, sigma_range=sigma_range)
    ours = sample_heun_kdiffusion(model, z * sigmas[0], sigmas)
    ref = guide(WRONG, exact_log_ratio, latents=z, w_euler=w, w_heun=w, sigma_range=sigma_range, steps=18,
                progress=False).x
    assert torch.allclose(ours, ref, atol=1e-5 * float(ref.abs().max()))


def test_k_diffusion_euler_loop_on_the_guided_denoiser_samples_the_data():
    z, sigmas = latents(512), edm_sigmas(40, 0.002, 80.0, 7.0)
    guided = sample_euler_kdiffusion(guided_denoiser(WRONG, exact_log_ratio, sigma_range=FULL), z * 80, sigmas)
    exact = sample_euler_kdiffusion(TARGET, z * 80, sigmas)
    unguided = sample_euler_kdiffusion(WRONG, z * 80, sigmas)
    assert torch.allclose(guided, exact, atol=1e-8)
    assert not torch.allclose(unguided, exact, atol=0.1)


def test_guided_denoiser_labels_by_keyword_and_modules_registered():
    seen = []

    def denoiser(x, sigma, labels=None):
        seen.append(labels)
        return TARGET(x, sigma)

    disc = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    model = guided_denoiser(denoiser, dgflow.wrap(lambda x, sigma, labels=None: disc(x), disc), w=1.0)
    y = torch.arange(4)
    x = latents(4).float()
    model(x, torch.ones(4), class_labels=y)
    assert torch.equal(seen[-1], y)
    assert set(map(id, model.parameters())) >= set(map(id, disc.parameters()))


class FakeKDiffusionModel(nn.Module):
    """k-diffusion's interface: ``model(x, sigma, **extra)`` returns E[x0 | x]; labels as ``class_cond``."""

    sigma_min, sigma_max = 0.01, 50.0

    def forward(self, x, sigma, *, class_cond=None, scale=1.0):
        self.last = (class_cond, scale)
        return TARGET(x, sigma)


def test_from_k_diffusion_passes_labels_and_extras_by_keyword():
    kmodel = FakeKDiffusionModel()
    D = from_k_diffusion(kmodel, scale=2.0)
    x, sig, y = latents(8), torch.ones(8, dtype=torch.float64), torch.arange(8)
    assert torch.equal(D(x, sig, y), TARGET(x, sig))
    assert torch.equal(kmodel.last[0], y) and kmodel.last[1] == 2.0
    assert (D.sigma_min, D.sigma_max) == (0.01, 50.0)
    res = guide(D, exact_log_ratio, latents=latents(64), labels=torch.arange(64) % 2, w_euler=1, w_heun=1,
                steps=8, progress=False)
    assert torch.isfinite(res.x).all()


# ----------------------------------------------------------------------------------------- diffusers


def tiny_unet(num_class_embeds=None):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_class_embeds)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusers_unet_and_ddpm_scheduler(prediction_type):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install -e '.[dev]')")
    unet = tiny_unet(num_class_embeds=3)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    D = from_diffusers(unet, sched)
    x = torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    y = torch.tensor([0, 1, 2, 0])
    abar = sched.alphas_cumprod[t].double()
    sigma = ((1 - abar) / abar).sqrt().float()
    with torch.no_grad():
        out = unet(x / (1 + sigma**2).sqrt()[:, None, None, None], t, class_labels=y).sample
        got = D(x, sigma, y)
    a = (1 / (1 + sigma**2)).sqrt()[:, None, None, None]
    s = sigma[:, None, None, None]
    expect = x - s * out if prediction_type == "epsilon" else a * (a * x) - s * a * out
    assert torch.allclose(got, expect, atol=1e-4)
    # Discriminator Guidance on it, with a time-dependent discriminator that outputs probabilities
    torch.manual_seed(1)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.SiLU(), nn.Flatten(), nn.Linear(64, 1), nn.Sigmoid())
    disc = dgflow.from_probability(dgflow.wrap(lambda x, sigma, labels: conv(x), conv))
    res = guide(D, disc, n=4, shape=(1, 8, 8), labels=y, steps=4, progress=False)
    assert res.x.shape == (4, 1, 8, 8) and torch.isfinite(res.x).all()


def test_diffusers_scheduler_loop_with_the_guided_denoiser():
    """A diffusers DDIM loop on ``to_diffusers(guided_denoiser(wrong model, exact ratio))`` equals the loop
    on the data's exact denoiser, and the unguided wrong model does not."""
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install -e '.[dev]')")

    def ddim(denoiser):
        sched = diffusers.DDIMScheduler(num_train_timesteps=1000, prediction_type="epsilon", clip_sample=False)
        sched.set_timesteps(50)
        model = to_diffusers(denoiser, sched)
        x = latents(256)
        for t in sched.timesteps:
            x = sched.step(model(x, t), t, x).prev_sample
        return x

    exact = ddim(TARGET)
    guided = ddim(guided_denoiser(WRONG, exact_log_ratio, w=1.0, sigma_range=FULL))
    assert torch.allclose(guided, exact, atol=1e-6)
    assert not torch.allclose(ddim(WRONG), exact, atol=0.1)
    assert torch.allclose(exact.mean(0), torch.tensor(M, dtype=torch.float64), atol=5 * S / 16)
