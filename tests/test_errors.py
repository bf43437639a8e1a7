"""Misuse raises early, with a message that names the problem (a method's own option errors are in tests/methods)."""

from __future__ import annotations

import pytest
import torch

import dgflow

from misuse import Z, d_ok, g_id, refine


# ------------------------------------------------------------------------------------- shapes


def test_one_dimensional_z():
    with pytest.raises(ValueError, match=r"z must be shaped \[N, \*latent_shape\].*got shape \(6,\)"):
        refine(z=torch.zeros(6))


def test_z_not_a_tensor():
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        refine(z=[[0.0, 0.0]])


def test_labels_of_wrong_length():
    with pytest.raises(ValueError, match=r"labels must hold one label per sample \(6\), got shape \(5,\)"):
        refine(z=Z, labels=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must hold one label per sample \(4\)"):
        dgflow.select(g_id, d_ok, 4, latent_shape=(2,), labels=torch.zeros(3, dtype=torch.long), progress=False)


def test_latent_shape_disagrees_with_z():
    with pytest.raises(ValueError, match=r"latent_shape \(3,\) disagrees with z of shape \(6, 2\)"):
        refine(z=Z, latent_shape=(3,))


def test_n_disagrees_with_z():
    with pytest.raises(ValueError, match=r"n=5 disagrees with the 6 latents"):
        refine(z=Z, n=5)


def test_neither_z_nor_n():
    with pytest.raises(ValueError, match="pass the starting latents z, or n"):
        refine(latent_shape=(2,))


def test_n_without_latent_shape():
    with pytest.raises(ValueError, match="needs the latent shape"):
        refine(n=4)


def test_sample_ids_of_wrong_length():
    with pytest.raises(ValueError, match=r"sample_ids must hold one id per latent \(6\), got shape \(4,\)"):
        refine(z=Z, sample_ids=[0, 1, 2, 3])


def test_nonfinite_z():
    bad = Z.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        refine(z=bad)


def test_prior_shape_disagrees_with_z():
    with pytest.raises(ValueError, match=r"latents have shape \(2,\) but the prior is over shape \(3,\)"):
        refine(z=Z, prior=dgflow.NormalPrior((3,)))


# ------------------------------------------------------------------------------ model outputs


def test_discriminator_returning_nan():
    d_nan = lambda x: torch.full((len(x),), float("nan"))  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"the discriminator returned 6 non-finite logits"):
        refine(z=Z, d=d_nan)
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        dgflow.select(g_id, d_nan, 3, latent_shape=(2,), burn_in=10, progress=False)


def test_discriminator_nan_midway_names_step_size():
    """A logit that only becomes non-finite after the latents moved far."""
    d_blowup = lambda x: torch.where(x.abs().amax(1) < 1.0, -((x - 5.0) ** 2).sum(1), torch.nan)  # noqa: E731
    with pytest.raises(FloatingPointError, match="lower the step size"):
        refine(z=Z, d=d_blowup, method="dgflow", eta=1.0, gamma=0.0)


def test_discriminator_wrong_shape():
    d_vec = lambda x: torch.zeros(len(x), 3)  # noqa: E731
    with pytest.raises(ValueError, match=r"returned shape \(6, 3\) for a batch of 6.*\[6\] or \[6, 1\]"):
        refine(z=Z, d=d_vec)
    d_short = lambda x: torch.zeros(len(x) - 1)  # noqa: E731
    with pytest.raises(ValueError, match=r"returned shape \(5,\) for a batch of 6"):
        refine(z=Z, d=d_short)


def test_discriminator_not_a_tensor():
    with pytest.raises(TypeError, match="returned float; it must return a tensor of logits"):
        refine(z=Z, d=lambda x: 0.0)


def test_corrector_term_named_in_error():
    bad_term = lambda x: torch.zeros(len(x), 2)  # noqa: E731
    with pytest.raises(ValueError, match=r"density-ratio term 1 .*returned shape \(6, 2\)"):
        refine(z=Z, corrector=bad_term)


def test_generator_returning_nan():
    g_nan = lambda z: z * float("nan")  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"the generator returned non-finite values .* for 6 of 6 samples"):
        refine(z=Z, g=g_nan)
    with pytest.raises(FloatingPointError, match="generator returned non-finite"):
        dgflow.select(g_nan, d_ok, 3, latent_shape=(2,), burn_in=10, progress=False)


def test_generator_dropping_the_batch_dimension():
    with pytest.raises(ValueError, match=r"generator returned shape \(2,\) for 6 latents"):
        refine(z=Z, g=lambda z: z.sum(0))


# ------------------------------------------------------------------------------- method names


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown refinement method 'langevin'.*\['ddls', 'dgflow', 'dot'\]"):
        refine(z=Z, method="langevin")
    with pytest.raises(ValueError, match=r"unknown selection method 'rejection'.*\['drs', 'mhgan'\]"):
        dgflow.select(g_id, d_ok, 3, method="rejection", latent_shape=(2,), progress=False)


def test_method_names_are_case_insensitive():
    assert refine(z=Z, method="DGflow").method == "dgflow"


@pytest.mark.parametrize("method", ["drs", "mhgan", "DRS"])
def test_refine_with_a_selector_says_use_select(method):
    with pytest.raises(ValueError, match=rf"selects samples.*dgflow\.select\(.*method='{method}'\)"):
        refine(z=Z, method=method)


@pytest.mark.parametrize("method", ["dgflow", "ddls", "dot"])
def test_select_with_a_refiner_says_use_refine(method):
    with pytest.raises(ValueError, match=rf"moves samples.*dgflow\.refine\(.*method='{method}'\)"):
        dgflow.select(g_id, d_ok, 3, method=method, latent_shape=(2,), progress=False)


@pytest.mark.parametrize("method, option", [("dgflow", "eps"), ("ddls", "eta"), ("dot", "gamma"),
                                            ("drs", "calibration"), ("mhgan", "percentile")])
def test_unknown_option_for_method(method, option):
    with pytest.raises(TypeError, match=rf"unknown option\(s\) \['{option}'\] for method '{method}'; valid options"):
        if method in ("drs", "mhgan"):
            dgflow.select(g_id, d_ok, 3, method=method, latent_shape=(2,), progress=False, **{option: 1})
        else:
            refine(z=Z, method=method, **{option: 1})


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize("method, name, value", [
    ("dgflow", "eta", -0.1), ("dgflow", "eta", 0.0), ("dgflow", "eta", float("nan")), ("dgflow", "gamma", -1.0),
    ("ddls", "eps", -0.01), ("ddls", "eps", float("inf")), ("ddls", "noise_scale", -1.0), ("ddls", "decay", 0.0),
    ("dot", "lr", -0.01), ("dot", "lr", 0.0), ("dot", "k_eff", -2.0), ("dot", "delta", -1.0),
])
def test_bad_step_sizes(method, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a finite number"):
        refine(z=Z, method=method, **{name: value})


@pytest.mark.parametrize("method", ["dgflow", "ddls", "dot"])
def test_bad_step_count(method):
    with pytest.raises(ValueError, match=r"steps must be a whole number >= 0, got -1"):
        refine(z=Z, method=method, steps=-1)
    with pytest.raises(ValueError, match=r"steps must be a whole number >= 0, got 2.5"):
        refine(z=Z, method=method, steps=2.5)


def test_bad_batch_size_and_save_interval():
    with pytest.raises(ValueError, match=r"batch_size must be a whole number >= 1, got 0"):
        refine(z=Z, batch_size=0)
    with pytest.raises(ValueError, match=r"save_interval must be a whole number >= 1, got 0"):
        refine(z=Z, save_interval=0)
    with pytest.raises(ValueError, match=r"n must be a whole number >= 1, got 0"):
        dgflow.select(g_id, d_ok, 0, latent_shape=(2,), progress=False)


def test_selector_options():
    with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\] or be None"):
        dgflow.select(g_id, d_ok, 3, latent_shape=(2,), percentile=150, progress=False)
    with pytest.raises(ValueError, match=r"burn_in must be a whole number >= 1"):
        dgflow.select(g_id, d_ok, 3, latent_shape=(2,), burn_in=0, progress=False)
    with pytest.raises(ValueError, match=r"chain_length must be a whole number >= 1"):
        dgflow.select(g_id, d_ok, 3, method="mhgan", latent_shape=(2,), chain_length=0, progress=False)
    with pytest.raises(ValueError, match=r"calibration must be one of"):
        dgflow.select(g_id, d_ok, 3, method="mhgan", latent_shape=(2,), calibration="platt", progress=False)


# -------------------------------------------------------------------- priors, spaces, callables


def test_unknown_prior_string():
    with pytest.raises(ValueError, match=r"unknown prior 'cauchy'; use 'normal', 'uniform'"):
        refine(z=Z, prior="cauchy")
    with pytest.raises(ValueError, match=r"unknown prior 'cauchy'"):
        dgflow.select(g_id, d_ok, 3, latent_shape=(2,), prior="cauchy", progress=False)


def test_prior_object_without_methods():
    class OnlySample:
        def sample(self, n):
            return torch.zeros(n, 2)

    with pytest.raises(TypeError, match=r"needs methods sample\(n\) and log_prob\(z\); OnlySample lacks log_prob"):
        refine(n=3, prior=OnlySample())


def test_unknown_space():
    with pytest.raises(ValueError, match=r"space must be 'latent' or 'data', got 'pixel'"):
        refine(z=Z, space="pixel")


def test_discriminator_not_callable():
    with pytest.raises(TypeError, match="density-ratio term must be callable"):
        refine(z=Z, d=3.0)


def test_sample_noise_bad_ids():
    with pytest.raises(ValueError, match="sample_ids must be one-dimensional"):
        dgflow.SampleNoise(0, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"sample_ids must lie in \[0, 2\*\*32\)"):
        dgflow.SampleNoise(0, [-1, 3])
