"""Golden outputs: the results of fixed small CLI runs, as digests, to show a refactoring changes no output.

The runs: ``dgflow demo`` (both 2-D datasets, every method, 48 samples), one ``dgflow refine --config`` per
method (DGflow, DDLS, DOT, DRS, MH-GAN on the shipped 25-Gaussians WGAN-GP, and DGflow with ``eta: auto``), one ``dgflow sample`` (EDM +
discriminator guidance, boosting, stochastic churn, with fixed seeded MLPs) and one ``torchrun`` run (two gloo
ranks of ``dgflow refine``). The outputs are the results users read: every array of every ``samples/*.npz``
(dtype, shape and bytes) and ``metrics.json`` / the demo's ``results.json`` with wall-clock times removed.
Bookkeeping (``config.yml``, ``fingerprint.txt``, batch files, images, TensorBoard events) is not included.

Record (only when an output is meant to change, and say so in the CHANGELOG)::

    python tests/golden_runs.py --record

Float results depend on the CPU's vector instruction set (BLAS kernels), so the digests are compared bit for
bit only on the platform they were recorded on (``platform_key``); the test says so when it is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs.json"
TOY = {"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
       "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
       "save_interval": 3, "num_imgs": 40, "batch_size": 16, "exp_root": "exps"}
METHODS = {  # one run per method, with options that exercise each method's own settings (steps: the refiners')
    "dgflow": {"method": "dgflow", "f_div": "JS", "eta": 0.01, "gamma": 0.01, "steps": 6, "normalize_critic": True},
    "ddls": {"method": "ddls", "steps": 6, "options": {"eps": 0.01, "metropolis": True}},
    "dot": {"method": "dot", "space": "data", "steps": 6,
            "options": {"lr": 0.01, "optimizer": "adam", "k_eff_pairs": 50}},
    "drs": {"method": "drs", "options": {"burn_in": 500, "gamma_per_chain": True, "chain_length": 50}},
    "mhgan": {"method": "mhgan", "options": {"chain_length": 20}},
    "dgflow-auto": {"method": "dgflow", "eta": "auto", "steps": 6, "normalize_critic": True},  # the step size tuned by "auto"
}
VOLATILE = ("seconds", "time", "timing")


def platform_key() -> str:
    import torch

    return f"torch {torch.__version__}, numpy {np.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}"


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not any(w in k for w in VOLATILE)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def digest_run(run_dir: Path) -> dict[str, str]:
    """``{file[:array]: sha256}`` of a run folder's results."""
    out: dict[str, str] = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.suffix == ".npz" and rel.startswith("samples/"):
            with np.load(path, allow_pickle=False) as data:
                for key in sorted(data.files):
                    a = np.ascontiguousarray(data[key])
                    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
                    out[f"{rel}:{key}"] = h.hexdigest()
        elif path.name in ("metrics.json", "results.json"):
            text = json.dumps(_strip(json.loads(path.read_text())), sort_keys=True)
            out[rel] = hashlib.sha256(text.encode()).hexdigest()
    if not out:
        raise AssertionError(f"no results found under {run_dir}")
    return out


@contextlib.contextmanager
def _single_thread(workdir: Path):
    import torch

    old_threads, old_cwd, old_env = torch.get_num_threads(), os.getcwd(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        torch.set_num_threads(old_threads)
        if old_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_env


def _write_config(path: Path, config: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=True))
    return path


def _sample_models(workdir: Path) -> dict[str, Any]:
    import torch

    from dgflow.zoo import build_model, save_checkpoint

    torch.manual_seed(0)
    kwargs = {"dim": 2, "width": 16, "depth": 2}
    den = build_model("mlp_denoiser", **kwargs)
    disc = build_model("mlp_time_discriminator", **kwargs)
    save_checkpoint(workdir / "den.pt", {"denoiser": ("mlp_denoiser", kwargs, den)})
    save_checkpoint(workdir / "disc.pt", {"discriminator": ("mlp_time_discriminator", kwargs, disc)})
    return {"denoiser_path": "den.pt", "disc_path": "disc.pt", "dataset": "25gaussians", "num_samples": 30,
            "batch_size": 8, "steps": 6, "S_churn": 5.0, "boosting": True, "exp_root": "exps", "name": "sample"}


def run_all(workdir: Path, torchrun: bool = True) -> dict[str, dict[str, str]]:
    """Run every golden job in ``workdir`` (one thread); returns ``{run: digest_run(...)}``."""
    from dgflow.cli import main

    workdir.mkdir(parents=True, exist_ok=True)
    digests: dict[str, dict[str, str]] = {}
    with _single_thread(workdir):
        assert main(["demo", "--n", "48", "--out", "demo", "--quiet"]) == 0
        digests["demo"] = digest_run(workdir / "demo")
        for name, extra in METHODS.items():
            cfg = _write_config(workdir / f"{name}.yml", {**TOY, **extra, "name": name})
            assert main(["refine", "--config", str(cfg), "--quiet"]) == 0
            digests[f"refine-{name}"] = digest_run(workdir / "exps" / name)
        cfg = _write_config(workdir / "sample.yml", _sample_models(workdir))
        assert main(["sample", "--config", str(cfg), "--quiet"]) == 0
        digests["sample"] = digest_run(workdir / "exps" / "sample")
        if torchrun:
            cfg = _write_config(workdir / "torchrun.yml", {**TOY, **METHODS["dgflow"], "name": "torchrun"})
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
                   "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   "-m", "dgflow", "refine", "--config", str(cfg), "--quiet"]
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            digests["torchrun"] = digest_run(workdir / "exps" / "torchrun")
    return digests


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/golden_runs.py --record   (rewrites tests/golden/outputs.json)")
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_all(Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"platform": platform_key(), "runs": runs}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {sum(len(v) for v in runs.values())} digests of {len(runs)} runs in {GOLDEN}")
