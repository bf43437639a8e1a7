"""`dgflow refine` / `dgflow sample` runs write TensorBoard events: read back, they hold the run's numbers."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from dgflow.config import validate
from dgflow.config import validate_sample_config
from dgflow.runs.sample import run_sample
from dgflow.runs.refine import run_refine
from dgflow.tensorboard_log import read_events
from dgflow.zoo import build_model, save_checkpoint

TOY = {"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
       "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
       "steps": 4, "save_interval": 2, "num_imgs": 48, "batch_size": 16}


def _png_size(encoded: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(encoded)) as img:
        return img.height, img.width


def test_refine_run_events_hold_metrics_grids_and_the_auto_pilot(tmp_path):
    cfg = validate({**TOY, "eta": "auto", "options": {"pilot": 16}, "exp_root": str(tmp_path), "name": "auto"})
    run_dir = run_refine(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    events = read_events(run_dir / "tensorboard")
    steps = metrics["steps"]
    assert events["scalars"]["refine/mean_logit"] == [
        (s, pytest.approx(v, rel=1e-6)) for s, v in zip(steps, metrics["mean_logit"])]
    for name, values in metrics["dataset"].items():  # the toy metrics, per kept step
        assert [s for s, _ in events["scalars"][f"refine/{name}"]] == steps
        assert [v for _, v in events["scalars"][f"refine/{name}"]] == pytest.approx(values, rel=1e-6)
    assert [s for s, _ in events["images"]["samples"]] == steps  # one grid per kept step, as the PNGs
    h, w, png = events["images"]["samples"][-1][1]
    assert _png_size(png) == (h, w) == Image.open(run_dir / f"grid_step_{steps[-1]:04d}.png").size[::-1]
    auto = json.loads((run_dir / "auto.json").read_text())["auto"]
    for trial in auto["trials"]:  # every pilot curve the controller looked at
        curve = events["scalars"][f"auto/mean_logit/eta_{trial['size']:g}"]
        assert [v for _, v in curve] == pytest.approx(trial["mean_logit"], rel=1e-6)
    assert events["scalars"]["auto/chosen_steps"] == [(0, float(auto["chosen"]["steps"]))]
    assert events["text"]["auto/reason"][0][1] == auto["reason"]
    before = [p.read_bytes() for p in (run_dir / "tensorboard").iterdir()]
    run_refine(cfg, progress=False)  # merging again (a resumed run) rewrites the same bytes, never duplicates events
    assert [p.read_bytes() for p in (run_dir / "tensorboard").iterdir()] == before and len(before) == 1


def test_sample_run_events_hold_each_variants_metrics_and_grid(tmp_path):
    torch.manual_seed(0)
    for role, arch in (("denoiser", "mlp_denoiser"), ("discriminator", "mlp_time_discriminator")):
        cfg = {"dim": 2, "width": 8, "depth": 1}
        save_checkpoint(tmp_path / f"{role}.pt", {role: (arch, cfg, build_model(arch, **cfg))})
    cfg = validate_sample_config({"denoiser_path": str(tmp_path / "denoiser.pt"),
                                  "disc_path": str(tmp_path / "discriminator.pt"), "dataset": "25gaussians",
                                  "num_samples": 16, "batch_size": 16, "steps": 3, "exp_root": str(tmp_path / "exps"),
                                  "name": "dg"})
    run_dir = run_sample(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    events = read_events(run_dir / "tensorboard")
    for variant in ("guided", "unguided"):
        for name, value in metrics["variants"][variant].items():
            if value is not None:
                assert events["scalars"][f"{variant}/{name}"] == [(0, pytest.approx(value, rel=1e-6))]
        assert len(events["images"][f"samples/{variant}"]) == 1
