"""The automatic step size and number of steps (``eta="auto"``, ``steps="auto"``), against closed forms.

Closed-form case (conftest.AffineGaussianCase): p_Z = N(0, I), g(z) = A z + b, mu = N(m, s^2 I),
exact logit d. Then d(g(z)) = log mu(A z + b) + |z|^2 / 2 + const, and one DGflow (KL) step

    z' = z + eta (z - A^T (A z + b - m) / s^2) + sqrt(2 gamma eta) xi = M z + c + sqrt(2 gamma eta) xi

is linear, so the law of z_n stays Gaussian: mean' = M mean + c, cov' = M cov M^T + 2 gamma eta I.
E_{q_n}[d] and KL(q_n || mu) of x_n = A z_n + b follow exactly, and so do the stopping step of the
level rule (first n with E_{q_n}[d] >= E_mu[d]) and the step that minimises KL(q_n || mu), which the
default rule (the smallest unbiased MMD^2 to held-out samples) must find.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dgflow
from dgflow.config import validate
from dgflow.runs.refine import run_refine
from dgflow.tuning import grid

GAMMA = 0.01


def exact_path(case, eta: float, steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(E_{q_n}[d], KL(q_n || mu)) for n = 0..steps, and the level E_mu[d] = KL(mu || p_g)."""
    A, b, m, s, k = case.A, case.b, case.m, case.s, case.k
    M = np.eye(k) + eta * (np.eye(k) - A.T @ A / s**2)
    c = eta * A.T @ (m - b) / s**2
    P = np.linalg.inv(A @ A.T)
    log_det_a = np.log(abs(np.linalg.det(A)))

    def mean_logit(mx, Sx):  # E[d(x)], x ~ N(mx, Sx)
        return (-(np.trace(Sx) + (mx - m) @ (mx - m)) / (2 * s**2) - k * np.log(s)
                + 0.5 * (np.trace(P @ Sx) + (mx - b) @ P @ (mx - b)) + log_det_a)

    mean, cov = np.zeros(k), np.eye(k)
    logits, kls = [], []
    for _ in range(steps + 1):
        mx, Sx = A @ mean + b, A @ cov @ A.T
        logits.append(mean_logit(mx, Sx))
        kls.append(0.5 * (np.trace(Sx) / s**2 + (m - mx) @ (m - mx) / s**2 - k + 2 * k * np.log(s)
                          - np.linalg.slogdet(Sx)[1]))
        mean, cov = M @ mean + c, M @ cov @ M.T + 2 * GAMMA * eta * np.eye(k)
    return np.array(logits), np.array(kls), mean_logit(m, s**2 * np.eye(k))


def first_reach(logits: np.ndarray, level: float) -> int | None:
    hits = np.nonzero(logits >= level)[0]
    return int(hits[0]) if len(hits) else None


def heldout_from_mu(case, n: int = 20_000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    return (torch.tensor(case.m) + case.s * torch.randn(n, case.k, generator=gen, dtype=torch.float64)).float()


@pytest.mark.parametrize("heldout", [True, False], ids=["heldout", "importance-weighted"])
def test_level_stop_is_the_exact_crossing_and_near_the_kl_optimum(gauss_case, heldout):
    eta = 0.03
    logits, kls, level = exact_path(gauss_case, eta, 100)
    n_exact = first_reach(logits, level)
    res = dgflow.refine(gauss_case.generator, gauss_case.discriminator, n=8, latent_shape=(2,), eta=eta,
                        gamma=GAMMA, steps="auto", stop="logit-level", pilot=4000,
                        heldout=heldout_from_mu(gauss_case) if heldout else None, progress=False, save_interval=None)
    auto = res.info["auto"]
    # the level: exact E_mu[d]; Monte Carlo with 20,000 held-out or 4,000 importance-weighted pilot
    # logits (logit sd ~0.7, ESS > 1,000): standard error < 0.025, so 0.08 is > 3 standard errors
    assert auto["level"] == pytest.approx(level, abs=0.08)
    # near the crossing the exact mean logit rises ~0.03 per step and the pilot mean has standard
    # error ~0.7 / sqrt(4000) = 0.011 (+ the level's error): within 3 steps of the exact crossing
    assert abs(auto["chosen"]["steps"] - n_exact) <= 3
    assert res.options["steps"] == auto["chosen"]["steps"] and res.steps == [auto["chosen"]["steps"]]
    # the criterion on this case: the stop loses little against the KL-optimal step (computed exactly)
    n_best = int(np.argmin(kls))
    assert abs(n_exact - n_best) <= 0.2 * n_best
    assert kls[auto["chosen"]["steps"]] <= 1.25 * kls[n_best] + 0.005
    assert kls[auto["chosen"]["steps"]] < 0.1 * kls[0]


def test_auto_eta_is_the_largest_step_that_takes_min_steps_to_the_level(gauss_case):
    res = dgflow.refine(gauss_case.generator, gauss_case.discriminator, n=8, latent_shape=(2,), eta="auto",
                        gamma=GAMMA, steps="auto", stop="logit-level", pilot=2000, heldout=heldout_from_mu(gauss_case),
                        min_steps=10, progress=False, save_interval=None)
    auto = res.info["auto"]
    # exact crossings per grid step size, largest first (None: never; eta = 1 diverges on these
    # cases, the trust ratio must reject it); the controller must pick the first one whose crossing
    # is >= 10 steps, unless it sits within 2 steps of the threshold (there the pilot's Monte Carlo
    # error, see above, may decide either way)
    crossings = {h: first_reach(*exact_path(gauss_case, h, 300)[::2]) for h in grid(0.1)}
    expected = next(h for h, n in crossings.items() if n is not None and n >= 10)
    assert auto["trials"][0]["size"] == 1.0 and not auto["trials"][0]["accepted"]
    if abs(crossings[expected] - 10) > 2:
        assert auto["chosen"]["eta"] == expected, crossings
    assert res.options["eta"] == auto["chosen"]["eta"]
    assert abs(auto["chosen"]["steps"] - crossings[auto["chosen"]["eta"]]) <= 3
    assert [t["size"] for t in auto["trials"]] == grid(0.1)[:len(auto["trials"])]
    assert auto["trials"][-1]["accepted"] and not any(t["accepted"] for t in auto["trials"][:-1])
    # with an exact, smooth logit the first-order prediction of the gain holds (trust ratio ~ 1)
    assert 0.8 < auto["trials"][-1]["ratio"] < 1.2
    assert "eta=" in auto["reason"] and "held-out" in auto["reason"]


def test_choice_does_not_depend_on_batch_size(row_models):
    g, d = row_models
    held = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    runs = [dgflow.refine(g, d, n=24, latent_shape=(2,), eta="auto", steps="auto", pilot=64, max_steps=30, heldout=held,
                          batch_size=b, progress=False, save_interval=None) for b in (5, 24)]
    assert runs[0].info["auto"] == runs[1].info["auto"]
    assert runs[0].options == runs[1].options
    assert torch.equal(runs[0].x, runs[1].x)
    # and the same as refining with the chosen values given explicitly
    fixed = dgflow.refine(g, d, n=24, latent_shape=(2,), progress=False, save_interval=None,
                          **{k: v for k, v in runs[0].options.items() if k in ("f", "eta", "gamma", "steps")})
    assert torch.equal(fixed.x, runs[0].x)


def test_samples_already_at_the_level_are_left_alone(identity_case):
    far = torch.full((50, 2), 6.0)  # d is very low there, so the base samples are above that level
    res = dgflow.refine(identity_case.generator, identity_case.discriminator, n=16, latent_shape=(2,), eta="auto",
                        steps="auto", stop="logit-level", heldout=far, pilot=64, progress=False, save_interval=None)
    assert res.info["auto"]["chosen"]["steps"] == 0
    _, base = dgflow.generate(identity_case.generator, 16, latent_shape=(2,))
    assert torch.equal(res.x, base)


def test_bad_auto_options_name_the_problem(identity_case):
    g, d = identity_case.generator, identity_case.discriminator
    with pytest.raises(ValueError, match="eta must be a finite number > 0 or 'auto'"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), eta="fast")
    with pytest.raises(ValueError, match="steps must be a whole number >= 0 or 'auto'"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), steps="many")
    with pytest.raises(ValueError, match="pilot must be a whole number >= 2"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), eta="auto", pilot=1)
    with pytest.raises(ValueError, match="heldout .* contains NaN"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), eta="auto", heldout=torch.full((4, 2), float("nan")))
    with pytest.raises(TypeError, match="autotune takes no 'n'"):
        dgflow.autotune(g, d, n=3, latent_shape=(2,), eta="auto")
    with pytest.raises(ValueError, match="eta must be a finite number > 0 or 'auto'"):
        validate({"gen_type": "x", "disc_type": "y", "eta": "fast"})


def test_runner_tunes_once_and_plots_the_level(tmp_path):
    cfg = validate({"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
                    "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
                    "normalize_critic": True, "eta": "auto", "steps": "auto", "heldout_real": 200,
                    "options": {"pilot": 64, "max_steps": 40}, "save_interval": 5, "num_imgs": 40, "batch_size": 16,
                    "name": "a", "exp_root": str(tmp_path)})
    run_dir = run_refine(cfg, progress=False)
    record = json.loads((run_dir / "auto.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"][-1] == record["options"]["steps"] == record["auto"]["chosen"]["steps"]
    assert metrics["auto"]["level"] == record["auto"]["level"] and "200 held-out" in metrics["auto"]["level_source"]
    assert (run_dir / "auto.png").stat().st_size > 0 and (run_dir / "metrics.png").stat().st_size > 0
    # a resumed run reuses the recorded choice (no second pilot)
    (run_dir / "auto.json").write_text(json.dumps({**record, "options": {**record["options"], "steps": 1}}))
    for f in (run_dir / "batches").glob("*.pt"):
        f.unlink()
    run_refine(cfg, progress=False)
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == [0, 1]


# ------------------------------------------------------------------ the default stop: distance to held-out data


def test_distance_stop_is_within_10_percent_of_the_kl_optimal_step(gauss_case):
    # the smallest unbiased MMD^2 (sum of Gaussian kernels, on the 2-D samples) between 1,000 pilot samples and
    # 1,000 draws of mu, every step. Exactly (closed-form Gaussian kernel expectations), that MMD^2 is smallest at the
    # KL-optimal step itself on both cases (affine: 10; identity: 14, where steps 14 and 15 differ by 0.4% of the
    # distance). The estimate's own error: over 6 seeds it chose 9-11 (affine) and 14-16 (identity), so the
    # identity case's flat minimum gets one step more than 10% (1.4 steps) of slack
    eta = 0.03
    _, kls, _ = exact_path(gauss_case, eta, 100)
    n_best = int(np.argmin(kls))
    res = dgflow.refine(gauss_case.generator, gauss_case.discriminator, n=8, latent_shape=(2,), eta=eta,
                        gamma=GAMMA, steps="auto", pilot=1000, heldout=heldout_from_mu(gauss_case, 1000), check_every=1,
                        progress=False, save_interval=None)
    auto = res.info["auto"]
    slack = 0.1 * n_best if np.allclose(gauss_case.A, [[1.2, 0.3], [-0.2, 0.9]]) else 2
    assert abs(auto["chosen"]["steps"] - n_best) <= slack
    assert auto["stop_rule"] == "distance" and "flattened (2 values)" in auto["features"]
    trial = auto["trials"][-1]
    assert len(trial["distance"]) == len(trial["distance_se"]) == len(trial["distance_steps"]) >= n_best
    assert trial["distance_steps"][:3] == [0, 1, 2] and min(trial["distance_se"]) > 0
    assert 0 < trial["difference_se"][0] < trial["distance_se"][0]  # the paired error is the smaller one
    assert trial["distance"][0] - min(trial["distance"]) > 2 * trial["difference_se"][0]
    # the pilot stopped once past the minimum (not at max_steps=100)
    assert trial["distance_steps"][-1] < 2 * n_best + 2
    assert auto["pilot_sample_steps"] == 1000 * trial["distance_steps"][-1]
    assert res.options["steps"] == auto["chosen"]["steps"] and "step 0" in auto["reason"]


def test_an_exploitable_discriminator_gets_zero_steps(identity_case):
    # held-out samples from the generator's own law N(0, I): every step of every step size moves the samples
    # towards mu = N((0.5, -0.3), 0.49 I), away from them, so the distance rises from step 0: the base is kept
    own = torch.randn(1000, 2, generator=torch.Generator().manual_seed(5))
    res = dgflow.refine(identity_case.generator, identity_case.discriminator, n=16, latent_shape=(2,), eta="auto",
                        steps="auto", heldout=own, pilot=500, progress=False, save_interval=None)
    auto = res.info["auto"]
    assert auto["chosen"]["steps"] == 0 and "never fell significantly" in auto["reason"]
    trial = next(t for t in auto["trials"] if t["accepted"])
    assert trial["distance"][-1] - trial["distance"][0] > 2 * trial["difference_se"][-1]
    _, base = dgflow.generate(identity_case.generator, 16, latent_shape=(2,))
    assert torch.equal(res.x, base)


def test_steps_auto_without_heldout_is_refused_and_eta_auto_keeps_working(identity_case):
    g, d = identity_case.generator, identity_case.discriminator
    with pytest.raises(ValueError, match=r'steps="auto" chooses .* needs held-out real samples: pass heldout=.*'
                                         r"heldout_real: 1000.*give steps.*stop=\"logit-level\""):
        dgflow.refine(g, d, n=2, latent_shape=(2,), steps="auto", progress=False)
    res = dgflow.refine(g, d, n=2, latent_shape=(2,), eta="auto", steps=5, pilot=64, progress=False)
    assert res.info["auto"]["stop_rule"] == "logit-level" and res.options["steps"] == 5
    res = dgflow.refine(g, d, n=2, latent_shape=(2,), steps="auto", stop="logit-level", pilot=64, progress=False)
    assert "importance-weighted" in res.info["auto"]["level_source"]
    with pytest.raises(ValueError, match=r"run\.yml: steps=\"auto\" chooses .* heldout_real: 1000"):
        validate({"gen_type": "x", "disc_type": "y", "steps": "auto"}, source="run.yml")
    assert validate({"gen_type": "x", "disc_type": "y", "steps": "auto", "heldout_real": 100}).options["steps"] == "auto"
    with pytest.raises(ValueError, match="stop must be one of"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), steps="auto", stop="soon")
    with pytest.raises(ValueError, match="check_every must be a whole number >= 1"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), steps="auto", check_every=0)


def test_features_are_used_and_checked(identity_case, tmp_path):
    g, d = identity_case.generator, identity_case.discriminator
    held = heldout_from_mu(identity_case, 300)
    common = dict(n=2, latent_shape=(2,), steps="auto", heldout=held, pilot=64, max_steps=20, progress=False)
    with pytest.raises(TypeError, match="features must be a module or function"):
        dgflow.refine(g, d, features=3, **common)
    with pytest.raises(ValueError, match=r"features must map a batch .* for a batch of 300 samples shaped \(2,\) "
                                         r"it returned \(1, 2\)"):
        dgflow.refine(g, d, features=lambda x: x[:1], **common)
    with pytest.raises(ValueError, match="features returned NaN"):
        dgflow.refine(g, d, features=lambda x: x / 0, **common)
    # a feature map that keeps only the first coordinate: the distance is measured there
    first = torch.nn.Flatten(0)
    res = dgflow.refine(g, d, features=lambda x: first(x[:, :1]), **common)
    auto = res.info["auto"]
    assert "given features (function, 1 values)" in auto["features"] and res.options["features"] is None
    # the evidence: the distance curve with its error band and the stop, drawn below the mean logit
    plot = tmp_path / "auto.png"
    dgflow.plot_pilot(auto, plot)
    assert plot.stat().st_size > 0
    trial = next(t for t in auto["trials"] if t["accepted"])
    assert trial["distance_steps"][0] == 0 and all(s % 2 == 0 for s in trial["distance_steps"][:-1])
    assert len(auto["bandwidth"]) == 4 and auto["heldout"] == 300


def test_ddls_takes_its_mala_step_size_and_stops_by_distance(identity_case):
    res = dgflow.refine(identity_case.generator, identity_case.discriminator, n=4, latent_shape=(2,), method="ddls",
                        eps="auto", steps="auto", heldout=heldout_from_mu(identity_case, 500), pilot=300, max_steps=60,
                        progress=False, save_interval=None)
    auto = res.info["auto"]
    judged, run_on = auto["trials"][-2:]  # the acceptance judged on 10 steps, then that eps run on with the distance
    assert judged["acceptance"] >= 0.574 and not judged["distance"] and run_on["size"] == judged["size"]
    # N(0, I) is far from mu = N((0.5, -0.3), 0.49 I): DDLS moves towards it, the distance falls significantly
    assert run_on["distance"][0] - min(run_on["distance"]) > run_on["difference_se"][0]
    assert res.options["steps"] == auto["chosen"]["steps"] == run_on["stop"] > 0
    assert res.options["eps"] == auto["chosen"]["eps"] == judged["size"]
