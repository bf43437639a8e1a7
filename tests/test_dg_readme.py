"""The README's "2-D (measured)" Discriminator Guidance rows are what the shipped configs print.

``dgflow sample --config pkg:configs/dg-<dataset>.yml`` samples the shipped 2-D denoiser with and
without the shipped time-dependent discriminator (seeded: the same latents every run); its two
variants must equal the README rows they name, to the digits the README prints. The shipped
checkpoints must also be what the training commands in the config's comments write (their recorded
settings), and ship in the wheel (the package-data glob).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from dgflow.config import load_sample_config
from dgflow.io import load_checkpoint_file
from dgflow.runs.sample import run_sample
from dgflow.cli import config_file
from dgflow.zoo.loading import resolve_path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"25gaussians": "25 Gaussians", "swissroll": "Swiss roll"}
# README column -> metrics.json key
COLUMNS = {"% high quality": "high_quality_pct", "modes (of 25)": "modes", "KDE real under gen": "kde_real_under_gen",
           "KDE gen under real": "kde_gen_under_real", "sliced W1": "swd"}


def readme_rows(dataset: str) -> dict[str, dict[str, str]]:
    """``{sampler: {column: cell}}`` of the README's 2-D DG table for ``dataset`` (bold marks removed)."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("**2-D (measured)**"):].split("\n\n")
    lines = next(block for block in table if block.startswith("| dataset | sampler |")).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip().strip("*") for c in line.strip("|").split("|"))))
        if cells["dataset"] == DATASETS[dataset]:
            rows[cells["sampler"]] = cells
    return rows


def guided_label(cfg) -> str:
    """The README's sampler label of a config's guided variant."""
    stages = "Euler+Heun" if cfg.dg_weight_2nd_order else "Euler"
    assert not cfg.dg_weight_2nd_order or cfg.dg_weight_2nd_order == cfg.dg_weight_1st_order
    return f"DG w={cfg.dg_weight_1st_order:g} ({stages})" + (" + boosting" if cfg.boosting else "")


def decimals(cell: str) -> int:
    return len(cell.split(".")[1]) if "." in cell else 0


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_shipped_dg_config_prints_the_readme_rows(dataset, tmp_path):
    torch.set_num_threads(1)  # as measured (benchmarks/dg.py --threads 1)
    path = config_file(f"pkg:configs/dg-{dataset}.yml")
    cfg = load_sample_config(path, {"exp_root": str(tmp_path)})
    assert cfg.denoiser_path.startswith("pkg:") and cfg.disc_path.startswith("pkg:")  # runs with no training
    run_dir = run_sample(cfg, path, progress=False)
    measured = json.loads((run_dir / "metrics.json").read_text())["variants"]
    rows = readme_rows(dataset)
    labels = {"unguided": "EDM (no DG)",
              "guided": next(label for label in rows if label.startswith(guided_label(cfg)))}
    for variant, label in labels.items():
        for column, key in COLUMNS.items():
            cell = rows[label].get(column, "")
            if not cell:  # the mode metrics exist only for the 25 Gaussians
                assert dataset == "swissroll" and key not in measured[variant], (dataset, label, column)
                continue
            value = measured[variant][key]
            assert f"{value:.{decimals(cell)}f}" == cell, (dataset, variant, column, value, cell)


def training_commands(config: Path) -> dict[str, dict[str, str]]:
    """``{"diffusion" | "tdisc": {option: value}}`` from the ``dgflow train`` commands in a config's comments."""
    comment = " ".join(line.lstrip("#").strip() for line in config.read_text().splitlines() if line.startswith("#"))
    commands = {}
    for match in re.finditer(r"dgflow train (diffusion|tdisc) (.*?)(?=dgflow |# |$)", comment.replace("\\", " ")):
        words = shlex.split(match.group(2).split(" To use")[0])
        commands[match.group(1)] = {w[2:]: v for w, v in zip(words, words[1:]) if w.startswith("--")}
    return commands


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_shipped_dg_checkpoints_are_what_the_config_commands_write(dataset):
    config = ROOT / "configs" / f"dg-{dataset}.yml"
    commands = training_commands(config)
    cfg = yaml.safe_load(config.read_text())
    den = load_checkpoint_file(resolve_path(cfg["denoiser_path"]))  # weights_only, sha256 checked
    disc = load_checkpoint_file(resolve_path(cfg["disc_path"]))
    diffusion, tdisc = commands["diffusion"], commands["tdisc"]
    assert den["meta"]["dataset"] == disc["meta"]["dataset"] == diffusion["dataset"] == tdisc["dataset"] == dataset
    assert den["meta"]["iterations"] == den["training"]["iteration"] == int(diffusion["iterations"])
    assert disc["meta"]["iterations"] == disc["training"]["iteration"] == int(tdisc["iterations"])
    assert disc["meta"]["denoiser"] == tdisc["denoiser"] == f"{diffusion['out']}/checkpoint.pt"
    assert disc["meta"]["fake_samples"] == int(tdisc["fake-samples"])
    assert disc["meta"]["lr"] == float(tdisc["lr"])
    assert disc["models"]["discriminator"]["config"]["fourier"] == int(tdisc.get("fourier", 0))


def test_shipped_dg_checkpoints_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dgflow"]
    for dataset in DATASETS:
        cfg = yaml.safe_load((ROOT / "configs" / f"dg-{dataset}.yml").read_text())
        for key in ("denoiser_path", "disc_path"):
            relative = cfg[key].removeprefix("pkg:")
            assert (ROOT / "src" / "dgflow" / relative).is_file()
            assert any(fnmatch.fnmatch(relative, glob) for glob in globs), (relative, globs)
