"""``torchrun -m dgflow refine``: two gloo ranks write the same files as one process; a dead rank resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from dgflow import distributed
from dgflow.config import validate
from dgflow.runs.refine import run_refine
from dgflow.zoo.toy import load_toy

SRC = Path(__file__).resolve().parents[1] / "src"
TOY = {"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
       "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
       "eta": 0.01, "steps": 4, "save_interval": 2, "num_imgs": 100, "batch_size": 16, "name": "t"}


def _without(config, *keys):
    """``config`` without ``keys`` (DGflow's eta, the refiners' steps: an error for a method they do not apply to)."""
    return {k: v for k, v in config.items() if k not in keys}


# a generator (by import path) that kills its process in rank 1 after that rank's first batch:
# 5 forward passes per batch (the start and 4 steps)
DYING = '''
import os
from dgflow.zoo.mlp import MLPGenerator

class DyingGenerator(MLPGenerator):
    calls = 0

    def forward(self, z):
        if os.environ.get("RANK") == "1" and os.environ.get("DIE_AFTER"):
            DyingGenerator.calls += 1
            if DyingGenerator.calls > int(os.environ["DIE_AFTER"]):
                os._exit(3)
        return super().forward(z)
'''


def _torchrun(config: Path, cwd: Path, env_extra: dict[str, str] | None = None,
              command: str = "refine", quiet: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(cwd)]), "OMP_NUM_THREADS": "1",
           **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "dgflow", command, "--config", str(config)] + (["--quiet"] if quiet else [])
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_shard_is_a_partition_fixed_by_the_item_index():
    items = list(range(11))
    for world in (1, 2, 3, 4):
        parts = [distributed.shard(items, r, world) for r in range(world)]
        assert sorted(sum(parts, [])) == items
        assert all(k % world == r for r, part in enumerate(parts) for k in part)
    with pytest.raises(ValueError, match="rank must lie in"):
        distributed.shard(items, 2, 2)


def test_the_run_estimates_dot_k_eff_once_as_refine_does(tmp_path):
    import numpy as np

    import dgflow

    cfg = validate({**_without(TOY, "eta"), "method": "dot", "exp_root": str(tmp_path)})
    run_dir = run_refine(cfg, progress=False)
    g, d, _ = load_toy("25gaussians")
    ref = dgflow.refine(g, d, n=100, latent_shape=(2,), method="dot", steps=4, batch_size=16, progress=False)
    final = np.load(run_dir / "samples" / "step_0004.npz")
    np.testing.assert_array_equal(final["x"], ref.x.numpy())
    batch = torch.load(next((run_dir / "batches").glob("ids_*.pt")), weights_only=False)
    assert batch["info"]["k_eff"] == ref.info["k_eff"]


def test_a_world_without_a_rendezvous_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="start multi-process runs with torchrun"):
        distributed.init("cpu")


def test_single_process_helpers_are_no_ops():
    ctx = distributed.init("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    assert distributed.on_main(lambda: 7) == 7 and distributed.broadcast(3) == 3 and distributed.gather(1) == [1]
    assert distributed.agree(torch.arange(3), "ids").tolist() == [0, 1, 2]
    with pytest.raises(ZeroDivisionError):
        distributed.on_main(lambda: 1 / 0)
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"


def test_two_gloo_ranks_write_byte_identical_files(tmp_path):
    # DOT with a normalised critic: both shared statistics (k_eff, the critic's offset) come from rank 0;
    # DGflow is compared the same way in the dead-rank test below
    cfg = {**_without(TOY, "eta"), "method": "dot", "options": {"k_eff_pairs": 50}, "normalize_critic": True}
    one = run_refine(validate({**cfg, "exp_root": str(tmp_path / "one")}), progress=False)
    config = tmp_path / "two.yml"
    config.write_text(yaml.safe_dump({**cfg, "exp_root": str(tmp_path / "two")}))
    proc = _torchrun(config, tmp_path, quiet=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("dot on 100 samples") == 1  # one report (the metrics table), from rank 0
    a, b = _files(one), _files(tmp_path / "two" / "t")
    a.pop("config.yml"), b.pop("config.yml")  # names its exp_root
    for files in (a, b):  # wall-clock times: the only files that may differ
        for name in [k for k in files if k.startswith("timing")]:
            files.pop(name)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith("batches/")]) == 7  # 100 samples in batches of 16
    for name in a:  # batch files, samples, metrics, grids, animation
        assert a[name] == b[name], name


def test_a_dead_rank_leaves_its_finished_batches_and_the_rerun_resumes(tmp_path):
    (tmp_path / "dying_models.py").write_text(DYING)
    g, _, _ = load_toy("25gaussians")
    torch.save(g.state_dict(), tmp_path / "g.pt")
    cfg = {**TOY, "gen_type": "dying_models:DyingGenerator", "gen_kwargs": {"z_dim": 2},
           "gen_path": str(tmp_path / "g.pt")}
    sys.path.insert(0, str(tmp_path))
    try:
        ref = run_refine(validate({**cfg, "exp_root": str(tmp_path / "ref")}), progress=False)
    finally:
        sys.path.remove(str(tmp_path))
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({**cfg, "exp_root": str(tmp_path / "dist")}))
    run_dir = tmp_path / "dist" / "t"

    died = _torchrun(config, tmp_path, {"DIE_AFTER": "5"})
    assert died.returncode != 0
    left = sorted(p.name for p in (run_dir / "batches").glob("ids_*.pt"))
    assert "ids_00000016-00000032.pt" in left  # rank 1's first batch (batch 1) finished
    assert "ids_00000048-00000064.pt" not in left  # rank 1's second batch (batch 3) did not
    assert not (run_dir / "samples").exists()  # nothing merged
    kept = {name: (run_dir / "batches" / name).stat().st_mtime_ns for name in left}

    resumed = _torchrun(config, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {name: (run_dir / "batches" / name).stat().st_mtime_ns for name in left} == kept  # not redone
    for step in (0, 2, 4):
        name = f"samples/step_{step:04d}.npz"
        assert (run_dir / name).read_bytes() == (ref / name).read_bytes(), name


def test_two_gloo_ranks_sample_with_guidance_like_one_process(tmp_path):
    """`dgflow sample` (EDM + discriminator guidance) under torchrun: same files as one process."""
    from dgflow.config import validate_sample_config
    from dgflow.runs.sample import run_sample
    from dgflow.zoo import build_model, save_checkpoint

    torch.manual_seed(0)
    spec = {"dim": 2, "width": 16, "depth": 2}
    save_checkpoint(tmp_path / "den.pt", {"denoiser": ("mlp_denoiser", spec, build_model("mlp_denoiser", **spec))})
    save_checkpoint(tmp_path / "disc.pt", {"discriminator": ("mlp_time_discriminator", spec,
                                                             build_model("mlp_time_discriminator", **spec))})
    cfg = {"denoiser_path": str(tmp_path / "den.pt"), "disc_path": str(tmp_path / "disc.pt"),
           "dataset": "25gaussians", "num_samples": 40, "batch_size": 8, "steps": 4, "name": "s"}
    one = run_sample(validate_sample_config({**cfg, "exp_root": str(tmp_path / "one")}), progress=False)
    config = tmp_path / "two.yml"
    config.write_text(yaml.safe_dump({**cfg, "exp_root": str(tmp_path / "two")}))
    proc = _torchrun(config, tmp_path, command="sample")
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _files(one), _files(tmp_path / "two" / "s")
    a.pop("config.yml"), b.pop("config.yml")  # names its exp_root
    assert sorted(a) == sorted(b) and len([k for k in a if k.startswith("batches/guided/")]) == 5
    for name in a:
        assert a[name] == b[name], name


def test_two_gloo_ranks_split_mhgan_chains_like_one_process(tmp_path):
    """MH-GAN's chains are independent: each rank evaluates every second chain's proposals and both
    get all logits; rank 0 saves the same selection as one process."""
    cfg = {**_without(TOY, "eta", "steps"), "method": "mhgan", "options": {"chain_length": 12}, "real_samples": 200,
           "num_imgs": 40}
    one = run_refine(validate({**cfg, "exp_root": str(tmp_path / "one")}), progress=False)
    config = tmp_path / "two.yml"
    config.write_text(yaml.safe_dump({**cfg, "exp_root": str(tmp_path / "two")}))
    proc = _torchrun(config, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(one / "batches" / "selection.pt", weights_only=False)
    b = torch.load(tmp_path / "two" / "t" / "batches" / "selection.pt", weights_only=False)
    for name in ("z", "x", "logits"):
        assert torch.equal(a[name], b[name]), name
    assert (a["info"].pop("ranks"), b["info"].pop("ranks")) == (1, 2)  # rank 1 did evaluate its chains
    assert a["info"] == b["info"]
