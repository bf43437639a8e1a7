"""The main job on the shipped 2-D models, at a small size."""

from __future__ import annotations

import json

import pytest

from dgflow.cli import main
from dgflow.experiments.toy2d import load_models, run_toy2d
from dgflow.zoo.toy import load_toy


def test_shipped_models_load_with_their_settings():
    for dataset in ("25gaussians", "swissroll"):
        generator, critic, meta = load_toy(dataset)
        assert meta["dataset"] == dataset and meta["z_dim"] == 2
        assert generator.z_dim == 2


def test_dgflow_lifts_high_quality_share_on_25_gaussians(tmp_path):
    # 400 samples: the base model puts ~13% of its samples within 4 std of a mode, DGflow ~93%
    # (README); a lift of 50 points is > 10 binomial standard errors (sd <= 2.5 points) from both.
    results = run_toy2d(tmp_path, datasets=("25gaussians",), n=400, progress=False,
                        methods=["DGflow (KL)", "DGflow (logD)"])
    rows = results["datasets"]["25gaussians"]["methods"]
    assert set(rows) == {"base", "DGflow (KL)", "DGflow (logD)"}
    assert rows["DGflow (KL)"]["high_quality_pct"] > rows["base"]["high_quality_pct"] + 50
    assert rows["DGflow (KL)"]["modes"] >= rows["base"]["modes"]
    for name in ("results.json", "table.md", "25gaussians.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["n"] == 400


def test_datasets_side_by_side_give_the_numbers_of_a_sequential_run(tmp_path):
    # two threads, one per dataset, against one thread running both in turn (every method but MH-GAN, the slow one)
    kw = dict(datasets=("25gaussians", "swissroll"), n=120, progress=False,
              methods=["DOT", "DDLS", "DRS", "DGflow (KL)", "DGflow (JS)"])
    parallel = run_toy2d(tmp_path / "p", workers=2, **kw)
    sequential = run_toy2d(tmp_path / "s", workers=1, **kw)
    for results in (parallel, sequential):
        for block in results["datasets"].values():
            for row in block["methods"].values():
                row.pop("seconds")
    assert parallel == sequential and list(parallel["datasets"]) == ["25gaussians", "swissroll"]
    assert (tmp_path / "p" / "swissroll.png").stat().st_size > 0
    with pytest.raises(ValueError, match="workers must be a whole number"):
        run_toy2d(tmp_path, workers=0)
    with pytest.raises(FileNotFoundError):  # an error in one dataset's thread reaches the caller
        run_toy2d(tmp_path / "e", workers=2, weights={"swissroll": str(tmp_path / "missing.pt")}, **kw)


def test_cli_demo_runs_and_prints_the_table(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--n", "200", "--datasets", "swissroll",
                 "--methods", "DOT", "DRS"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| swissroll | DRS |" in out and "| swissroll | base |" in out
    assert "higher is better" in out and f"{tmp_path}/swissroll.png" in out.splitlines()[-1]
    assert (tmp_path / "swissroll.png").exists()
    assert main(["demo", "--out", str(tmp_path / "q"), "--n", "50", "--datasets", "swissroll",
                 "--methods", "DRS", "--quiet"]) == 0
    assert capsys.readouterr().out == ""  # --quiet: no progress, no summary


def test_cli_reports_bad_input_without_traceback(capsys):
    code = main(["demo", "--n", "0", "--datasets", "swissroll", "--quiet"])
    assert code == 2
    assert "n must be a whole number >= 1" in capsys.readouterr().err


def test_self_normalised_critic_has_unit_mean_ratio_on_fresh_samples():
    import torch

    from dgflow import generate

    generator, critic, _ = load_models("25gaussians")
    _, x = generate(generator, 5000, latent_shape=(2,), seed=123)
    with torch.no_grad():
        mean_ratio = torch.exp(critic(x).double()).mean().item()
    # the critic's logits vary with sd ~0.6 on generated samples, so the MC error of E[exp d]
    # on 5000 fresh samples is ~0.01; allow 0.1
    assert abs(mean_ratio - 1) < 0.1
