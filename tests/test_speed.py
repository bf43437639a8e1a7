"""Speed options of ``dgflow.refine``: micro-batches change nothing; bf16, compile and channels-last
stay within stated tolerances of float32."""

from __future__ import annotations

import pytest
import torch

import dgflow
from dgflow.config import validate
from dgflow.priors import make_prior
from dgflow.ratio import DensityRatio
from dgflow.speed import SpeedOptions, batch_for_budget, saved_bytes_per_sample
from dgflow.target import Target
from dgflow.zoo.toy import load_toy
from dgflow.zoo import build_model

FIELDS = ("x", "z", "logits", "z_history", "x_history", "logit_history")


def _same(a, b):
    for name in FIELDS:
        u, v = getattr(a, name), getattr(b, name)
        assert (u is None) == (v is None), name
        if u is not None:
            assert torch.equal(u, v), name


@pytest.mark.parametrize("method, options", [("dgflow", {"eta": 0.1, "steps": 5}),
                                             ("ddls", {"eps": 0.01, "steps": 5, "metropolis": True}),
                                             ("dot", {"steps": 5, "k_eff_pairs": 16})])
def test_micro_batches_are_bit_identical_to_one_pass(row_models, method, options):
    # batch-invariant networks (conftest), so any difference would come from the splitting itself
    g, d = row_models
    kw = dict(n=37, latent_shape=(2,), method=method, batch_size=37, progress=False, save_interval=2, **options)
    full = dgflow.refine(g, d, **kw)
    _same(dgflow.refine(g, d, speed={"max_batch_size": 5}, **kw), full)
    _same(dgflow.refine(g, d, speed=SpeedOptions(max_batch_size=1), **kw), full)
    if method != "ddls":  # DDLS runs in latent space only
        _same(dgflow.refine(g, d, space="data", speed={"max_batch_size": 4}, **kw),
              dgflow.refine(g, d, space="data", **kw))


def test_micro_batches_of_a_conditional_model_keep_each_rows_label():
    torch.manual_seed(0)
    g = build_model("cond_dcgan_generator", channels=1, image_size=28, z_dim=8, width=4).eval()
    d = build_model("cond_sndcgan_discriminator", channels=1, image_size=28, width=4).eval()
    labels = torch.arange(9) % 3
    kw = dict(n=9, latent_shape=(8,), labels=labels, steps=2, eta=0.05, batch_size=9, progress=False)
    full = dgflow.refine(g, d, **kw)
    split = dgflow.refine(g, d, speed={"max_batch_size": 2}, **kw)
    # conv kernels may round differently for a batch of 2 than of 9 (last bits): a tight tolerance
    torch.testing.assert_close(split.x, full.x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(split.logits, full.logits, rtol=1e-5, atol=1e-5)


def test_memory_budget_picks_the_micro_batch_from_the_saved_activations(row_models):
    g, d = row_models
    target = Target(g, DensityRatio(d), make_prior("normal", (2,)))
    per_sample = saved_bytes_per_sample(lambda z: target.evaluate(z), torch.randn(8, 2))
    # RowMLP 2 -> 16 -> 2 then 2 -> 16 -> 1: autograd keeps O(hidden * inputs) floats per sample
    assert 100 < per_sample < 10_000
    assert batch_for_budget(lambda z: target.evaluate(z), torch.randn(8, 2), 7 * 2 * per_sample / 2**30) == 7
    kw = dict(n=40, latent_shape=(2,), steps=3, batch_size=40, progress=False)
    _same(dgflow.refine(g, d, speed={"memory_budget_gib": 3 * 2 * per_sample / 2**30}, **kw), dgflow.refine(g, d, **kw))


def test_bf16_autocast_stays_within_its_rounding_error():
    g, d, _ = load_toy("25gaussians")
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    ratio, prior = DensityRatio(d), make_prior("normal", (2,))
    exact = Target(g, ratio, prior).evaluate(z)
    bf16 = Target(g, ratio, prior, speed=SpeedOptions(autocast="bf16")).evaluate(z)
    assert bf16.x.dtype == bf16.logit.dtype == bf16.grad.dtype == torch.float32

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    # bf16 keeps 8 significant bits: each of the 4 layers of G and of D rounds its input and weights
    # to a relative 2^-8 = 0.4%, and the errors add over layers: forward outputs within 4 * 2^-8 = 1.6%
    # (measured: 0.2%). The gradient is a product of 8 rounded Jacobians whose ReLU masks can also
    # flip near zero; measured 6% (10% on the MNIST SN-DCGAN): bound 25%.
    assert rel(bf16.x, exact.x) < 4 * 2**-8
    assert rel(bf16.logit, exact.logit) < 4 * 2**-8
    assert rel(bf16.grad, exact.grad) < 0.25
    # what refinement is for: the distribution of refined samples. Same seeds, so the two runs are
    # paired; 1 point of "high quality" is 10 of 1000 samples changing side (measured: 0.05 points).
    from dgflow.metrics import toy_scores
    from dgflow.data.toy import sample_toy

    kw = dict(n=1000, latent_shape=(2,), eta=0.01, steps=10, batch_size=500, progress=False)
    real = sample_toy("25gaussians", 1000, seed=1)
    a = toy_scores("25gaussians", dgflow.refine(g, d, **kw).x, real)
    b = toy_scores("25gaussians", dgflow.refine(g, d, speed={"autocast": "bf16"}, **kw).x, real)
    assert abs(a["high_quality_pct"] - b["high_quality_pct"]) <= 1.0
    assert a["modes"] == b["modes"]


def test_channels_last_and_compile_change_only_the_rounding():
    torch.manual_seed(0)
    g = build_model("dcgan_generator", channels=1, image_size=28, z_dim=8, width=4).eval()
    d = build_model("sndcgan_discriminator", channels=1, image_size=28, width=4).eval()
    kw = dict(n=6, latent_shape=(8,), steps=2, eta=0.05, batch_size=6, progress=False)
    ref = dgflow.refine(g, d, **kw)
    # "aot_eager": dynamo + AOTAutograd graphs without inductor's C++ build (minutes on 2 cores)
    for speed in ({"channels_last": True}, {"compile": "aot_eager", "channels_last": True}):
        fast = dgflow.refine(g, d, speed=speed, **kw)
        # the same float32 arithmetic in another order (other conv kernels, fused graphs): a few float32
        # ulps (2^-23 ~ 1e-7 relative) per op, grown over 2 steps; 1e-4 leaves a wide margin
        torch.testing.assert_close(fast.x, ref.x, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.logits, ref.logits, rtol=1e-4, atol=1e-5)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)  # converted in place


def test_speed_options_are_validated_and_reach_the_config():
    with pytest.raises(ValueError, match="autocast must be one of"):
        SpeedOptions(autocast="int8")
    with pytest.raises(ValueError, match="max_batch_size must be a whole number"):
        SpeedOptions(max_batch_size=0)
    with pytest.raises(ValueError, match=r"unknown speed option\(s\) \['compiled'\]"):
        dgflow.refine(lambda z: z, lambda x: x.sum(1), n=2, latent_shape=(2,), speed={"compiled": True})
    toy = {"gen_type": "mlp_generator", "disc_type": "mlp_discriminator", "z_dim": 2}
    with pytest.raises(ValueError, match="memory_budget_gib must be a number > 0"):
        validate({**toy, "memory_budget_gib": -1})
    cfg = validate({**toy, "autocast": "bf16", "max_batch_size": 64})
    assert cfg.speed_options() == SpeedOptions(autocast="bf16", max_batch_size=64)


# ----------------------------------------------------------------------- finiteness checks in the loop


def _target(d, g=None, guard=None):
    return Target(g, DensityRatio(d), make_prior("normal", (3,)) if g is not None else None, guard=guard)


def test_nonfinite_gradient_is_reported_with_finite_logits():
    """sqrt(|x|) has a finite value but no finite derivative at 0: the fused check catches the gradient."""
    d = lambda x: x.abs().sqrt().sum(1)  # noqa: E731
    z = torch.zeros(4, 3)
    with pytest.raises(FloatingPointError, match=r"gradient of the logit.*for 4 of 4 samples"):
        _target(d, g=lambda z: z).evaluate(z)
    with pytest.raises(FloatingPointError, match=r"gradient of the logit"):
        dgflow.refine(lambda z: z, d, z, steps=2, progress=False)


def test_fused_check_has_no_false_alarm_when_the_sum_overflows():
    """Finite gradients of 3e38 sum to inf in float32: the parts are then examined, and all are finite."""
    t = _target(lambda x: x.sum(1))
    z = torch.ones(4, 3)
    t._check_finite(z, z, torch.zeros(4), torch.full((4, 3), 3e38))  # no error
    with pytest.raises(FloatingPointError, match="gradient of the logit"):
        t._check_finite(z, z, torch.zeros(4), torch.tensor([[3e38, 0, 0], [0, 0, float("inf")]] * 2))


def test_deferred_guard_raises_what_the_immediate_check_raises():
    """With a FiniteGuard, evaluate() records instead of raising; check() raises the same error, for the
    first bad evaluation, and blames the generator when its samples were non-finite."""
    from dgflow.target import FiniteGuard

    g_nan = lambda z: z + torch.where(z[:, :1] > 0, float("nan"), 0.0)  # noqa: E731
    d = lambda x: -(x**2).sum(1)  # noqa: E731
    z = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 0, 0], [-3.0, 0, 0], [-1.0, 0, 0]])
    for grad in (True, False):
        with pytest.raises(FloatingPointError) as immediate:
            _target(d, g_nan).evaluate(z, grad=grad)
        guard = FiniteGuard()
        t = _target(d, g_nan, guard)
        t.evaluate(-z.abs(), grad=grad)  # all finite
        guard.check()
        t.evaluate(z, grad=grad)  # 2 of 5 non-finite: recorded, not raised
        t.evaluate(z[:1], grad=grad)  # a later bad evaluation does not overwrite the first
        with pytest.raises(FloatingPointError) as deferred:
            guard.check()
        assert str(deferred.value) == str(immediate.value) and "for 2 of 5 samples" in str(immediate.value)
    guard = FiniteGuard()  # data space: the logit is blamed, as in an immediate check
    _target(lambda x: x.sum(1).log(), guard=guard).evaluate(z)
    with pytest.raises(FloatingPointError, match="the discriminator returned 3 non-finite logits .* out of 5"):
        guard.check()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_refine_steps_do_not_synchronise_on_cuda():
    """The refine loop's steps (evaluate, finiteness guard, noise, update) run without a host sync:
    torch.cuda.set_sync_debug_mode("error") turns any synchronising call into an error."""
    from dgflow.refiners import REFINERS
    from dgflow.rng import SampleNoise
    from dgflow.target import FiniteGuard

    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).cuda()
    dnet = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).cuda()
    for method, opts in [("dgflow", {"steps": 5}), ("ddls", {"steps": 5, "eps": 0.01, "metropolis": True})]:
        refiner = REFINERS[method](**opts)
        guard = FiniteGuard()
        t = Target(g, DensityRatio(dnet), make_prior("normal", (3,)), guard=guard)
        noise = SampleNoise(0, torch.arange(64), "cuda")
        state = refiner.init(t, torch.randn(64, 3, device="cuda"))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(refiner.steps):
                state, _ = refiner.step(t, state, step, noise)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        guard.check()
        assert torch.isfinite(state.z).all()
    # and the whole refine() call on CUDA, with a NaN midway, still raises the immediate check's error
    d_blowup = lambda x: torch.where(x.abs().amax(1) < 1.0, -((x - 5.0) ** 2).sum(1), torch.nan)  # noqa: E731
    with pytest.raises(FloatingPointError, match="lower the step size"):
        dgflow.refine(lambda z: z, d_blowup, torch.zeros(6, 2, device="cuda") + 0.1, method="dgflow", eta=1.0,
                      gamma=0.0, device="cuda", progress=False)


# ------------------------------------------------------------------------------------------ startup


HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "tensorboardX")


def _modules_after(code: str) -> set[str]:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_import_dgflow_and_help_import_no_heavy_library():
    """`import dgflow` and building the CLI parser (what `dgflow --help` does) load none of torch,
    matplotlib, scipy, sklearn, tensorboardX; the API names load on first use, still without the
    plotting and metrics libraries."""
    assert not _modules_after("import dgflow") & set(HEAVY)
    assert not _modules_after("import dgflow.cli; dgflow.cli.build_parser()") & set(HEAVY)
    loaded = _modules_after("import dgflow\nfor name in dgflow.__all__: getattr(dgflow, name)")
    assert "torch" in loaded and not loaded & set(HEAVY[1:])


def test_lazy_names_are_the_modules_objects():
    import dgflow.api
    import dgflow.rng

    assert dgflow.refine is dgflow.api.refine and dgflow.SampleNoise is dgflow.rng.SampleNoise
    assert set(dgflow.__all__) <= set(dir(dgflow))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        dgflow.not_a_name  # noqa: B018


# ------------------------------------------------------------------------------------------ threads


def test_thread_default_never_exceeds_cores_or_affinity(monkeypatch):
    import os

    from dgflow import cli

    cpus = cli._usable_cpus()
    assert 1 <= cli.physical_cores(cpus) <= len(cpus)
    n = cli.torch_threads_default()
    assert 1 <= n <= min(cli.physical_cores(cpus), len(cpus), os.cpu_count())
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(4 * len(cpus)))  # more torchrun ranks than CPUs: one thread each
    assert cli.torch_threads_default() == 1


def test_busy_cpus_measures_other_processes_now():
    import os
    import sys

    from dgflow import cli

    busy, how = cli.busy_cpus(0.05)
    assert 0.0 <= busy <= (os.cpu_count() or 1) and how
    if sys.platform.startswith("linux"):  # measured from /proc/stat, not the lagging load average
        assert "of the CPUs" in how


def test_configure_threads_says_what_it_chose(monkeypatch, capsys):

    from dgflow import cli

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(cli, "busy_cpus", lambda: (0.0, "idle"))  # idle: the default
        assert cli.configure_threads() == cli.torch_threads_default() == torch.get_num_threads()
        assert "physical core" in capsys.readouterr().err
        monkeypatch.setattr(cli, "busy_cpus", lambda: (1000.0, "busy"))  # every CPU busy: one thread
        assert cli.configure_threads() == 1 == torch.get_num_threads()
        assert cli.configure_threads(requested=2) == 2 == torch.get_num_threads()
        assert "2 CPU thread(s) (--threads)" in capsys.readouterr().err
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice is kept
        torch.set_num_threads(1)
        assert cli.configure_threads() == 1
        assert "(OMP_NUM_THREADS)" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
