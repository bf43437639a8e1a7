"""Bring your own model: discriminator conventions, wrapped networks in eval mode, GANs from other code bases.

Every network here is small and randomly initialised in the test; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from torch import nn

import dgflow
from dgflow.ratio import DensityRatio, check_logits

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp_d(seed: int = 1, sigmoid: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))


def mlp_g(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))


def opts(**kw):
    return dict(method="dgflow", n=32, latent_shape=(2,), eta=0.1, gamma=0.01, steps=3, progress=False, **kw)


# ------------------------------------------------------------------------------ discriminator conventions


def test_from_probability_returns_the_logit_and_its_gradient():
    D = mlp_d(sigmoid=True)
    x = torch.randn(64, 2)
    logit_net = nn.Sequential(*list(D)[:-1])
    # an nn.Sequential ending in Sigmoid: the sigmoid is dropped, the logit is exact
    assert torch.equal(dgflow.from_probability(D)(x), logit_net(x))
    # any other callable: logit(clamp(p, eps, 1 - eps))
    wrapped = dgflow.from_probability(lambda x: D(x), eps=1e-6)
    assert torch.allclose(wrapped(x), logit_net(x), atol=1e-5)
    p = torch.tensor([[0.0], [0.5], [1.0]])
    assert torch.allclose(dgflow.from_probability(lambda x: p, eps=1e-3)(x[:3]),
                          torch.logit(torch.tensor([[1e-3], [0.5], [1 - 1e-3]])))
    with pytest.raises(ValueError, match="eps"):
        dgflow.from_probability(D, eps=0.7)


def test_refining_with_from_probability_equals_refining_with_the_logit():
    """The issue's bug: a sigmoid output used as a logit scales the drift by p (1 - p)."""
    G, D = mlp_g(), mlp_d(sigmoid=True)
    logit_net = nn.Sequential(*list(D)[:-1])
    ref = dgflow.refine(G, logit_net, **opts())
    res = dgflow.refine(G, dgflow.from_probability(dgflow.wrap(lambda x: D(x), D)), **opts())
    assert torch.allclose(res.x, ref.x, atol=1e-5)
    with pytest.warns(UserWarning, match="probability"):
        wrong = dgflow.refine(G, D, **opts())
    assert not torch.allclose(wrong.x, ref.x, atol=1e-4)  # the unwrapped sigmoid gives a different (wrong) flow


def test_probability_outputs_warn_once_and_error_when_strict():
    G, D = mlp_g(), mlp_d(seed=3, sigmoid=True)
    with pytest.warns(UserWarning, match=r"probability.*dgflow\.from_probability"):
        dgflow.refine(G, D, **opts())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per discriminator: no second warning
        dgflow.refine(G, D, **opts())
    with pytest.raises(ValueError, match="probability"):
        dgflow.refine(G, DensityRatio(D, strict=True), **opts())
    with pytest.raises(ValueError, match="probability"):
        dgflow.select(G, DensityRatio(D, strict=True), 16, latent_shape=(2,), progress=False)
    # logits are not flagged, even strictly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dgflow.refine(G, DensityRatio(dgflow.from_probability(D), strict=True), **opts())


def test_small_batches_are_not_probed():
    ratio = DensityRatio(lambda x: torch.full((len(x),), 0.5), strict=True)
    ratio(torch.zeros(4, 2))  # fewer than PROBE_MIN samples: no verdict yet
    with pytest.raises(ValueError, match="probability"):
        ratio(torch.zeros(8, 2))


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    features: torch.Tensor


def test_output_conventions():
    d = torch.randn(5)
    for out in (d, d[:, None], d[:, None, None, None], (d[:, None], "features"), [d], Output(d, torch.zeros(5, 3)),
                {"logits": d, "hidden": None}):
        assert torch.equal(check_logits(out, 5), d)
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        check_logits(torch.zeros(5, 2), 5)
    with pytest.raises(TypeError, match="tuple / dataclass"):
        check_logits("logits", 5)


def test_dcgan_discriminator_with_1x1_output():
    """A [B, 1, 1, 1] output (a DCGAN conv head) is one logit per sample."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 4, 1, 0))
    x = torch.randn(6, 1, 8, 8)
    assert torch.equal(DensityRatio(D)(x), D(x).flatten())


# ---------------------------------------------------------------------------------- wrappers stay modules


class NoisyDiscriminator(nn.Module):
    """Dropout and BatchNorm: both change behaviour (and BatchNorm its buffers) in training mode."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.net = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x)


def make_wrapped(kind: str, D: nn.Module):
    if kind == "wrap":
        return dgflow.wrap(lambda x: D(x) * 1.0, D)
    if kind == "closure":
        return lambda x: D(x) * 1.0
    if kind == "method":
        return D.forward
    return dgflow.from_probability(lambda x: torch.sigmoid(D(x)))


@pytest.mark.parametrize("kind", ["wrap", "closure", "method", "from_probability"])
def test_wrapped_networks_are_in_eval_mode_and_frozen(kind):
    G, D = mlp_g(), NoisyDiscriminator()
    D.train()
    stats = {k: v.clone() for k, v in D.state_dict().items()}
    disc = make_wrapped(kind, D)
    a = dgflow.refine(G, disc, seed=1, **opts())
    torch.manual_seed(123)  # a different global RNG state: dropout (if on) would draw other masks
    b = dgflow.refine(G, disc, seed=1, **opts())
    assert torch.equal(a.x, b.x)  # dropout off
    for k, v in D.state_dict().items():
        assert torch.equal(v, stats[k]), k  # BatchNorm running statistics unchanged
    assert D.training and all(p.requires_grad for p in D.parameters())  # flags restored after the call
    # select and autotune, too
    dgflow.select(G, disc, 16, latent_shape=(2,), progress=False)
    dgflow.autotune(G, disc, latent_shape=(2,), eta="auto", steps=2, pilot=16, progress=False)
    for k, v in D.state_dict().items():
        assert torch.equal(v, stats[k]), k


def test_modules_are_frozen_during_the_call():
    G, D = mlp_g(), mlp_d()
    seen = []
    disc = dgflow.wrap(lambda x: (seen.append((D.training, D[0].weight.requires_grad)), D(x))[1], D)
    dgflow.refine(G, disc, **opts())
    assert seen and all(flags == (False, False) for flags in seen)
    assert D[0].weight.requires_grad


def test_guide_puts_a_wrapped_denoiser_in_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    denoiser = lambda x, sigma: x + 0.1 * net(torch.cat([x, sigma.log()[:, None]], 1))  # noqa: E731
    a = dgflow.guide(denoiser, None, n=8, shape=(2,), steps=4, progress=False).x
    torch.manual_seed(5)
    b = dgflow.guide(denoiser, None, n=8, shape=(2,), steps=4, progress=False).x
    assert torch.equal(a, b)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_a_lambda_without_a_module_warns_once():
    G = mlp_g()
    closed_form = lambda x: -(x**2).sum(1)  # noqa: E731
    with pytest.warns(UserWarning, match="eval mode.*dgflow.wrap"):
        dgflow.refine(G, closed_form, **opts())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dgflow.refine(G, closed_form, **opts())


def test_wrap_checks_its_arguments_and_registers_modules():
    D = mlp_d()
    w = dgflow.wrap(lambda x: D(x), D)
    assert isinstance(w, nn.Module) and list(w.parameters()) == list(D.parameters())
    with pytest.raises(TypeError, match="not an nn.Module"):
        dgflow.wrap(lambda x: x, "D")
    with pytest.raises(TypeError, match="callable"):
        dgflow.wrap(3, D)


# ------------------------------------------------------------------------------- GANs from other code bases


class DCGANGenerator(nn.Module):
    """PyTorch-examples DCGAN layout at 8x8: latents [B, nz, 1, 1], BatchNorm, Tanh."""

    def __init__(self, nz: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.main = nn.Sequential(nn.ConvTranspose2d(nz, 8, 4, 1, 0, bias=False), nn.BatchNorm2d(8), nn.ReLU(True),
                                  nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    """... ending in Conv2d -> [B, 1, 1, 1] -> Sigmoid, as in the PyTorch DCGAN example."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.main = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x)


def test_dcgan_recipe_latents_nz_1_1_and_sigmoid_discriminator():
    G, D = DCGANGenerator(), DCGANDiscriminator()
    G.train()
    stats = {k: v.clone() for k, v in G.state_dict().items()}
    d = dgflow.from_probability(D)
    res = dgflow.refine(G, d, n=16, latent_shape=(4, 1, 1), eta=0.5, gamma=0.0, steps=5, progress=False)
    assert res.z.shape == (16, 4, 1, 1) and res.x.shape == (16, 1, 8, 8)
    assert res.logit_history.shape == (2, 16) and not torch.equal(res.logit_history[-1], res.logit_history[0])
    assert all(torch.equal(v, stats[k]) for k, v in G.state_dict().items())
    # the logits it reports are D's logits
    with torch.no_grad():
        G.eval()
        p = D(G(res.z)).flatten()
    assert torch.allclose(res.logits, torch.logit(p), atol=1e-4)


class CondGenerator(nn.Module):
    def __init__(self, nz: int = 3, classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(classes, nz)
        self.net = nn.Sequential(nn.Linear(2 * nz, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, z, y):
        return self.net(torch.cat([z, self.embed(y)], 1))


class CondDiscriminator(nn.Module):
    def __init__(self, classes: int = 4):
        super().__init__()
        torch.manual_seed(1)
        self.embed = nn.Embedding(classes, 2)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x, y):
        return self.net(torch.cat([x, self.embed(y)], 1))


def test_conditional_recipe_generator_z_y():
    G, D = CondGenerator(), CondDiscriminator()
    y = torch.arange(12) % 4
    res = dgflow.refine(G, D, n=12, latent_shape=(3,), labels=y, eta=0.1, gamma=0.01, steps=3, progress=False)
    with torch.no_grad():
        assert torch.allclose(res.logits, D(res.x, y).flatten(), atol=1e-5)
    sel = dgflow.select(G, D, 12, latent_shape=(3,), labels=y, progress=False)
    assert torch.equal(sel.labels, y)


class TinyStyleGAN(nn.Module):
    """The StyleGAN2/3 interface: ``mapping(z, c) -> ws [B, num_ws, w_dim]``, ``synthesis(ws, noise_mode)``,
    ``forward(z, c, noise_mode)``. The mapping is affine, so W is exactly Gaussian."""

    z_dim, w_dim, num_ws = 3, 4, 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.map = nn.Linear(self.z_dim, self.w_dim)
        self.syn = nn.Sequential(nn.Linear(self.w_dim * self.num_ws, 16), nn.Tanh(), nn.Linear(16, 2))

    def mapping(self, z, c):
        return self.map(z)[:, None, :].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="random"):
        x = self.syn(ws.flatten(1))
        return x + (0.1 * torch.randn_like(x) if noise_mode == "random" else 0)

    def forward(self, z, c, noise_mode="random"):
        return self.synthesis(self.mapping(z, c), noise_mode=noise_mode)


def test_stylegan_recipe_in_z_and_in_w():
    G, D = TinyStyleGAN(), mlp_d()
    z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(0))
    in_z = dgflow.refine(dgflow.wrap(lambda z: G(z, None, noise_mode="const"), G), D, z=z, eta=0.1, gamma=0.0,
                         steps=3, progress=False)
    assert in_z.z.shape == (16, 3)
    W = dgflow.w_space(G, n=20_000, noise_mode="const")
    # W of an affine mapping is N(b, diag(|A|^2 rows)): the fitted mean / std match it
    assert torch.allclose(W.w_mean, G.map.bias, atol=0.05)
    assert torch.allclose(W.w_std, G.map.weight.norm(dim=1), rtol=0.03)
    u = W.latents(z)
    with torch.no_grad():  # the start is G's own sample
        assert torch.allclose(W(u), G(z, None, noise_mode="const"), atol=1e-5)
    in_w = dgflow.refine(W, D, z=u, eta=0.1, gamma=0.0, steps=3, progress=False)
    assert in_w.z.shape == (16, G.w_dim)
    with torch.no_grad():  # the reported samples and logits are W's images of the refined latents
        assert torch.allclose(in_w.x, W(in_w.z), atol=1e-5)
        assert torch.allclose(in_w.logits, D(in_w.x).flatten(), atol=1e-5)
    assert not torch.allclose(in_w.z, u)
    with pytest.raises(TypeError, match="mapping"):
        dgflow.w_space(mlp_g())
