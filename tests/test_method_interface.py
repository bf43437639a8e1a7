"""The method interface: immutable refiners and selectors, ``step -> (state, info)``, the shared Langevin
integrator, and a refine loop that needs nothing but that interface."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import dgflow
from dgflow import loop
from dgflow.priors import make_prior
from dgflow.ratio import DensityRatio
from dgflow.refiners import DOT, REFINERS, DGflow
from dgflow.refiners.base import Refiner, StepInfo
from dgflow.refiners.langevin import langevin_step
from dgflow.rng import SampleNoise
from dgflow.selectors import SELECTORS
from dgflow.target import Evaluation, Target
from dgflow.tuning import tune


def _draw_from(case, prior):
    target = Target(case.generator, DensityRatio(case.discriminator), prior)

    def draw(stream: str, count: int):
        return prior.draw(SampleNoise(0, torch.arange(count)), stream=stream), target

    return draw, target


@pytest.mark.parametrize("registry", [REFINERS, SELECTORS])
def test_methods_are_frozen(registry):
    for cls in registry.values():
        method = cls()
        field = dataclasses.fields(method)[-1].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(method, field, getattr(method, field))


def test_prepare_and_tuning_return_new_methods_and_leave_the_original(identity_case):
    draw, _ = _draw_from(identity_case, make_prior("normal", (2,)))
    dot = DOT(k_eff_pairs=16)
    prepared, info = dot.prepare(draw)
    assert dot.k_eff is None and prepared.k_eff == info["k_eff"] > 0 and prepared is not dot
    given = DOT(k_eff=2.0)
    same, info = given.prepare(draw)
    assert same is given and info == {"k_eff": 2.0}  # nothing to estimate: the same method
    auto = DGflow(eta="auto", steps="auto", stop="logit-level", pilot=32, max_steps=20)
    tuned, evidence = tune(auto, draw)
    assert auto.eta == "auto" and auto.steps == "auto"  # untouched
    chosen = evidence["auto"]["chosen"]
    assert (tuned.eta, tuned.steps) == (chosen["eta"], chosen["steps"]) and isinstance(tuned, DGflow)
    assert evidence["auto"]["step_option"] == "eta" == DGflow.step_size_name


def test_each_method_names_its_step_size_and_auto_grid_centres_on_its_default():
    assert {cls.step_size_name for cls in REFINERS.values()} == {"eta", "eps", "lr"}
    for cls in REFINERS.values():
        method = cls()
        assert method.step_size == getattr(method, cls.step_size_name) == cls.default_step_size()
        with pytest.raises(ValueError, match=f"{cls.step_size_name} must be a finite number > 0"):
            cls(**{cls.step_size_name: -1.0})


def test_langevin_step_is_the_euler_maruyama_update():
    z, drift = torch.randn(5, 3), torch.randn(5, 3)
    noise = SampleNoise(3, torch.arange(5))
    xi = noise.normal((3,), step=2, stream="s")
    assert torch.equal(langevin_step(z, drift, 0.25, noise, 2, "s"), z + drift + 0.25 * xi)


def test_dgflow_and_ddls_steps_are_the_shared_langevin_step(identity_case, monkeypatch):
    """Both methods move through ``langevin_step``: replaced by a recording copy of its formula, the results
    stay bit-identical, and it sees every step with the method's stream and noise scale."""
    import dgflow.refiners.ddls as ddls_module
    import dgflow.refiners.dgflow as dgflow_module

    calls = []

    def recorded(z, drift, noise_std, noise, n, stream):
        calls.append((stream, noise_std))
        return z + drift + noise_std * noise.normal(z.shape[1:], step=n, stream=stream, dtype=z.dtype)

    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    common = dict(z=z, progress=False, save_interval=None)
    before = [dgflow.refine(identity_case.generator, identity_case.discriminator, eta=0.05, gamma=0.01, steps=3,
                            **common).x,
              dgflow.refine(identity_case.generator, identity_case.discriminator, method="ddls", eps=0.05, steps=3,
                            **common).x]
    monkeypatch.setattr(dgflow_module, "langevin_step", recorded)
    monkeypatch.setattr(ddls_module, "langevin_step", recorded)
    after = [dgflow.refine(identity_case.generator, identity_case.discriminator, eta=0.05, gamma=0.01, steps=3,
                           **common).x,
             dgflow.refine(identity_case.generator, identity_case.discriminator, method="ddls", eps=0.05, steps=3,
                           **common).x]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert [c[0] for c in calls] == ["dgflow"] * 3 + ["ddls"] * 3
    assert calls[0][1] == math.sqrt(2 * 0.01 * 0.05) and calls[3][1] == math.sqrt(0.05) * 1.0


@dataclass(frozen=True)
class Ascent(Refiner):
    """A method written only against the interface: plain gradient ascent on the logit, one move in two taken."""
    lr: float = 0.1
    steps: int = 4
    name: ClassVar[str] = "ascent"
    step_size_name: ClassVar[str] = "lr"

    def init(self, target: Target, z: torch.Tensor) -> Evaluation:
        return target.evaluate(z, grad=self.steps > 0)

    def step(self, target, state, n, noise):
        take = torch.arange(len(state.z)) % 2 == n % 2
        z = torch.where(take[:, None], state.z + self.lr * state.grad, state.z)
        return target.evaluate(z, grad=self.needs_grad(n)), StepInfo(accepted=take)


def test_the_loop_needs_only_the_method_interface(identity_case):
    prior = make_prior("normal", (2,))
    target = Target(identity_case.generator, DensityRatio(identity_case.discriminator), prior)
    z = prior.draw(SampleNoise(0, torch.arange(7)))
    seen = []
    out = loop.run(Ascent(), target, z, seed=0, sample_ids=torch.arange(7), kept=loop.kept_steps(4, 2),
                   device=torch.device("cpu"), batch_size=3, progress=False, callback=seen.append)
    assert out.steps == [0, 2, 4] and out.logit_history.shape == (3, 7) and out.z_history.shape == (3, 7, 2)
    assert out.acceptance_rate == 0.5  # from the steps' info: each sample moved in 2 of 4 steps
    assert [c["step"] for c in seen] == [1, 2, 3, 4] * 3 and all(isinstance(c["info"], StepInfo) for c in seen)
    assert torch.equal(out.z_history[0], z)
    assert (out.z_history[1] != out.z_history[0]).any(1).all()  # by step 2 every sample has moved once
    assert torch.equal(out.z, out.z_history[2])
