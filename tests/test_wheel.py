"""The package a pip user gets: build the wheel from the repository's files, install it in a fresh virtual
environment outside the repository, and run it there (no PYTHONPATH, no source tree)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md", "src", "configs"]


@pytest.mark.package
def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path):
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info next to the sources
    source.mkdir()
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")}
                                           if (ROOT / name).is_dir() else {}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"

    def run(*cmd: str | os.PathLike, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
        source)
    (wheel,) = (tmp_path / "dist").glob("dgflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"dgflow/py.typed", "dgflow/configs/toy-25gaussians.yml", "dgflow/toy/weights/25gaussians.pt",
            "dgflow/toy/weights/dg-25gaussians-denoiser.pt", "dgflow/toy/weights/dg-swissroll-tdisc.pt"} <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)

    # torch and the other dependencies come from this interpreter's site-packages
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel)
    where = run(python, "-c", "import dgflow; print(dgflow.__file__)")
    assert where.startswith(str(tmp_path / "venv")), where

    dgflow = tmp_path / "venv" / "bin" / "dgflow"
    from dgflow import __version__

    assert run(dgflow, "--version").strip() == f"dgflow {__version__}"
    out = run(dgflow, "refine", "--config", "pkg:configs/toy-25gaussians.yml", "--set", "num_imgs=200", "steps=5",
              "exp_root=exps")
    header = next(line for line in out.splitlines() if line.lstrip().startswith("step"))
    assert header.split()[:5] == ["step", "mean", "logit", "high", "quality"]
    last_step = next(line for line in out.splitlines() if line.split()[:1] == ["5"]).split()
    metrics = json.loads((tmp_path / "exps" / "toy-25gaussians" / "metrics.json").read_text())
    assert float(last_step[2]) == pytest.approx(metrics["dataset"]["high_quality_pct"][-1], rel=1e-3)
