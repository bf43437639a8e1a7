"""benchmarks/gpu_smoke.py --tiny: the runbook's commands run end to end (CPU, synthetic CIFAR-10 / STL-10)."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"


def _fake_data(root: Path) -> None:
    rng = np.random.default_rng(0)
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), b"labels": list(range(8))}
        (cifar / name).write_bytes(pickle.dumps(batch))
    stl = root / "stl10_binary"
    stl.mkdir()
    for split in ("train", "test"):
        rng.integers(0, 256, (8, 3, 96, 96), dtype=np.uint8).tofile(stl / f"{split}_X.bin")
        rng.integers(1, 11, 8).astype(np.uint8).tofile(stl / f"{split}_y.bin")


def test_tiny_smoke_runs_each_kind_of_row_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("DGFLOW_CACHE", str(tmp_path / "cache"))
    _fake_data(tmp_path / "data")
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    out = tmp_path / "out"
    only = ["stl10 SN-DCGAN", "OCF-GAN", "Glow", "DG cifar10 conditional"]
    code = smoke.main(["--tiny", "--device", "cpu", "--data", str(tmp_path / "data"), "--out", str(out), "--only", *only])
    result = json.loads((out / "smoke.json").read_text())
    assert sorted(result["rows"]) == ["DG cifar10 conditional", "DGflow cifar10 Glow + corrector",
                                      "DGflow cifar10 OCF-GAN + corrector", "DGflow stl10 SN-DCGAN"]
    assert code == 0, {k: r.get("error") for k, r in result["rows"].items()}
    table = (out / "smoke.md").read_text()
    assert table.count("| ok |") == 4
    assert (out / "exps").is_dir()
    # every row of the full runbook is defined, each with its commands
    rows = smoke.rows(smoke.SCALES["tiny"], "data", out, "cpu")
    assert len(rows) == 11 and all(rows.values())
