"""Reliability and security at the boundary where users' files and reruns enter (issue 11).

Each test mirrors a row of ``docs/reliability.md`` (case | behaviour). The "no code runs" tests
plant a payload whose unpickling would create a marker file, and assert that the marker is absent.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import dgflow
from dgflow import io
from dgflow.cli import main
from dgflow.config import validate
from dgflow.zoo.loading import load_model
from dgflow.config import validate_sample_config
from dgflow.runs.refine import run_refine
from dgflow.runs.sample import run_sample
from dgflow.zoo.toy import load_toy
from dgflow.zoo import build_model, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SHIPPED = Path(dgflow.__file__).parent / "toy" / "weights" / "25gaussians.pt"
TOY = {"dataset": "25gaussians", "gen_type": "mlp_generator", "disc_type": "mlp_discriminator", "z_dim": 2,
       "eta": 0.01, "steps": 2, "save_interval": 2, "num_imgs": 24, "batch_size": 8, "name": "t"}


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the stand-in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(path: Path, marker: Path, dgflow_format: bool = True) -> Path:
    """A file that looks like a dgflow checkpoint and runs code when fully unpickled."""
    payload = torch.load(SHIPPED, weights_only=True) if dgflow_format else {}
    payload["meta"] = {"note": _Payload(marker)}
    torch.save(payload, path)
    return path


def _toy_ckpt(tmp_path: Path, name: str = "toy.pt") -> Path:
    path = tmp_path / name
    shutil.copy(SHIPPED, path)
    return path


def _cfg(tmp_path: Path, ckpt: Path | None = None, **kw):
    ckpt = ckpt or _toy_ckpt(tmp_path)
    return validate({**TOY, "gen_path": str(ckpt), "disc_path": str(ckpt), "exp_root": str(tmp_path / "exps"), **kw})


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# ------------------------------------------------------------------- 1. a checkpoint runs no code


def test_a_malicious_checkpoint_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "bad.pt", marker)
    with pytest.raises(io.UntrustedFileError, match="--trust-checkpoint.*trust_checkpoint: true.*trust=True"):
        load_checkpoint(bad)
    with pytest.raises(io.UntrustedFileError, match="full unpickling"):
        load_model("generator", None, str(bad), {}, "generator", torch.device("cpu"))
    with pytest.raises(io.UntrustedFileError):
        run_refine(_cfg(tmp_path, bad), progress=False)
    assert not marker.exists()
    assert not (tmp_path / "exps" / "t").exists()  # and nothing was claimed (item 7)


def test_the_cli_refuses_a_malicious_checkpoint_in_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "bad.pt", marker)
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({**TOY, "gen_path": str(bad), "disc_path": str(bad),
                                      "exp_root": str(tmp_path / "exps")}))
    code, err = _cli(capsys, "refine", "--config", str(config), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--trust-checkpoint" in err
    assert not marker.exists()


def test_trusting_a_checkpoint_is_an_explicit_opt_in(tmp_path):
    marker = tmp_path / "marker"
    bad = _malicious(tmp_path / "bad.pt", marker)
    models, _ = load_checkpoint(bad, trust=True)  # the user said they trust it: full unpickling
    assert marker.exists() and "generator" in models
    marker.unlink()
    run_refine(_cfg(tmp_path, bad, trust_checkpoint=True), progress=False)
    assert marker.exists()


def test_shipped_and_plain_state_dict_checkpoints_load_without_trust(tmp_path):
    g, _, _ = load_toy("25gaussians")
    torch.save(g.state_dict(), tmp_path / "g.pt")
    model = load_model("generator", "mlp_generator", str(tmp_path / "g.pt"), {"z_dim": 2}, "generator",
                       torch.device("cpu"))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), g.parameters()))


# ---------------------------------------------------------------- 2. run-folder files run no code


def test_a_planted_pickle_in_the_run_folder_runs_no_code(tmp_path):
    marker = tmp_path / "marker"
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    batch = sorted((run_dir / "batches").glob("ids_*.pt"))[0]
    torch.save({"ids": torch.arange(8), "evil": _Payload(marker)}, batch)
    with pytest.raises(io.UntrustedFileError, match=f"batch file {batch}.*delete it"):
        run_refine(cfg, progress=False)
    assert not marker.exists()


def test_sample_runs_load_batch_files_without_pickle(tmp_path):
    den = {"dim": 2, "width": 8, "depth": 1}
    save_checkpoint(tmp_path / "den.pt", {"denoiser": ("mlp_denoiser", den, build_model("mlp_denoiser", **den))})
    cfg = validate_sample_config({"denoiser_path": str(tmp_path / "den.pt"), "dg_weight_1st_order": 0.0,
                                  "num_samples": 6, "batch_size": 3, "steps": 4, "exp_root": str(tmp_path / "e"),
                                  "name": "s"})
    run_dir = run_sample(cfg, progress=False)
    marker = tmp_path / "marker"
    batch = sorted((run_dir / "batches" / "unguided").glob("ids_*.pt"))[0]
    torch.save({"ids": torch.arange(3), "x": _Payload(marker)}, batch)
    with pytest.raises(io.UntrustedFileError):
        run_sample(cfg, progress=False)
    assert not marker.exists()


# ------------------------------------------------------------ 3. import paths name nn.Module classes


def test_an_import_path_that_is_not_a_module_class_is_never_called(tmp_path):
    marker = tmp_path / "marker"
    cfg = _cfg(tmp_path, gen_type="builtins:open", gen_path=None, gen_kwargs={"file": str(marker), "mode": "w"})
    with pytest.raises(ValueError, match=r"gen_type: 'builtins:open' is a builtin_function_or_method, not a "
                                         r"torch.nn.Module subclass"):
        run_refine(cfg, progress=False)
    with pytest.raises(ValueError, match="not a torch.nn.Module subclass"):
        run_refine(_cfg(tmp_path, gen_type="subprocess:call", gen_path=None, gen_kwargs={"args": ["true"]}), progress=False)
    assert not marker.exists()


# ------------------------------------------------- 4. --overwrite is fresh; a changed checkpoint is named


def test_overwrite_empties_the_run_folder(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    stale = [run_dir / "auto.json", run_dir / "grid_step_0099.png", run_dir / "samples" / "step_0099.npz",
             run_dir / "batches" / "ids_00000100-00000108.pt"]
    for f in stale:
        f.write_text("{}")
    run_refine(cfg, progress=False, overwrite=True)
    assert not any(f.exists() for f in stale)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step_0000.npz", "step_0002.npz"]
    assert not list(run_dir.parent.glob(".t.discarded-*"))  # the moved-aside copy is deleted


def test_a_checkpoint_changed_in_place_is_refused_on_resume(tmp_path):
    ckpt = _toy_ckpt(tmp_path)
    cfg = _cfg(tmp_path, ckpt)
    run_dir = run_refine(cfg, progress=False)
    recorded = json.loads((run_dir / "checkpoints.json").read_text())
    assert recorded["gen_path"] == {"path": str(ckpt), "sha256": io.file_sha256(ckpt)}
    g, d, meta = load_toy("25gaussians")
    with torch.no_grad():
        next(g.parameters()).add_(0.01)  # "retrained" in place
    save_checkpoint(ckpt, {"generator": ("mlp_generator", {"z_dim": 2}, g), "discriminator": ("mlp_discriminator", {}, d)})
    with pytest.raises(ValueError, match=f"gen_path {ckpt} has changed since .* was started"):
        run_refine(cfg, progress=False)
    run_refine(cfg, progress=False, overwrite=True)  # the fresh run uses the new weights
    ref = dgflow.refine(g, d, n=24, latent_shape=(2,), eta=0.01, steps=2, progress=False)
    np.testing.assert_array_equal(np.load(run_dir / "samples" / "step_0002.npz")["x"], ref.x.numpy())


def test_a_run_from_before_checkpoint_hashes_is_not_resumed_silently(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    (run_dir / "checkpoints.json").unlink()
    (run_dir / "fingerprint.txt").write_text("0123456789abcdef\n")  # an older dgflow's fingerprint
    with pytest.raises(ValueError, match="different configuration .* did not record its checkpoints' sha256"):
        run_refine(cfg, progress=False)


# ---------------------------------------------------------------------- 5. one run per folder


def test_a_second_run_of_the_same_folder_is_refused_or_waits(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = tmp_path / "exps" / "t"
    with io.run_lock(run_dir):
        with pytest.raises(RuntimeError, match=r"another dgflow run \(pid \d+\) is using .*--wait"):
            run_refine(cfg, progress=False)
    holder = io.run_lock(run_dir)
    holder.__enter__()
    releaser = threading.Timer(0.5, holder.__exit__, (None, None, None))
    began = time.monotonic()
    releaser.start()
    run_refine(cfg, progress=False, wait=True)
    assert time.monotonic() - began >= 0.5 and (run_dir / "metrics.json").exists()


# ------------------------------------------------------------------ 6. batch files hold their ids


def test_batch_files_store_only_their_own_ids(tmp_path):
    run_dir = run_refine(_cfg(tmp_path), progress=False)
    for f in sorted((run_dir / "batches").glob("ids_*.pt")):
        ids = torch.load(f, weights_only=True)["ids"]
        assert len(ids) == 8 and ids.untyped_storage().nbytes() == 8 * ids.element_size()


# ---------------------------------------------------- 7. a failed start leaves the folder unclaimed


def test_a_failed_start_does_not_claim_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="gen_path"):
        run_refine(_cfg(tmp_path, gen_path=str(tmp_path / "missing.pt")), progress=False)
    run_refine(_cfg(tmp_path), progress=False)  # the fixed config runs without --overwrite


# ------------------------------------------------------------ 8. names stay inside exp_root


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", ""])
def test_a_name_that_leaves_exp_root_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="name .* must be a plain folder name inside exp_root"):
        _cfg(tmp_path, name=name)
    with pytest.raises(ValueError, match="plain folder name"):
        validate_sample_config({"denoiser_type": "mlp_denoiser", "name": name})


# ---------------------------------------------------------- 9. a NaN denoiser is named as such


def test_a_nan_denoiser_is_blamed_not_the_discriminator():
    def nan_denoiser(x, sigma):
        return x * float("nan")

    def discriminator(x, sigma):
        return -(x**2).sum(1)

    for disc in (None, discriminator):
        with pytest.raises(FloatingPointError, match="the denoiser returned non-finite values"):
            dgflow.guide(nan_denoiser, disc, 4, shape=(2,), steps=4, progress=False)


# ------------------------------------------------------ 10. a detached discriminator is an error


def test_a_detached_discriminator_is_an_error():
    g = nn.Linear(2, 2)
    net = nn.Linear(2, 1)  # a plain function around it: its weights are not frozen by refine

    def detached(x):
        return net(x.detach())

    def detached_plus_zero(x):
        return net(x.detach())[:, 0] + 0 * x.sum(1)

    for d in (detached, detached_plus_zero):
        with pytest.raises(RuntimeError, match="the discriminator's output does not depend on its input: is it detached"):
            dgflow.refine(g, d, n=8, latent_shape=(2,), steps=2, progress=False)


# ------------------------------------------------------------ 11. flipped bytes are caught


def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"generator": ("mlp_generator", {"z_dim": 2}, build_model("mlp_generator", z_dim=2))})
    with zipfile.ZipFile(path) as zf:  # the first weight tensor's bytes (stored uncompressed)
        info = next(i for i in zf.infolist() if "/data/" in i.filename and i.file_size > 64)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")  # the local header's
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + 17] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is corrupt: its weights do not match the sha256"):
        load_checkpoint(path)


# ------------------------------------------------------------ 12. messages name real keys


def test_messages_name_keys_that_exist(tmp_path):
    g, _, _ = load_toy("25gaussians")
    torch.save(g.state_dict(), tmp_path / "g.pt")
    with pytest.raises(ValueError, match="set gen_type") as err:
        run_refine(_cfg(tmp_path, gen_type=None, gen_path=str(tmp_path / "g.pt")), progress=False)
    assert "gene_" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="config's gen_path"):
        load_model("generator", None, str(tmp_path / "none.pt"), {}, "generator", torch.device("cpu"))


# ------------------------------------------------ 13. the CLI: one line, exit 2; --traceback; SIGINT


def _config_file(tmp_path: Path, **kw) -> str:
    ckpt = _toy_ckpt(tmp_path)
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({**TOY, "gen_path": str(ckpt), "disc_path": str(ckpt),
                                    "exp_root": str(tmp_path / "exps"), **kw}))
    return str(path)


def test_cli_truncated_checkpoint_is_one_line(tmp_path, capsys):
    ckpt = tmp_path / "cut.pt"
    ckpt.write_bytes(SHIPPED.read_bytes()[:1000])
    code, err = _cli(capsys, "refine", "--config", _config_file(tmp_path, gen_path=str(ckpt)), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a readable PyTorch file (truncated or corrupt?)" in err


def test_cli_exp_root_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, err = _cli(capsys, "refine", "--config", _config_file(tmp_path, exp_root=str(tmp_path / "file" / "x")),
                     "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "ENOTDIR" in err


def test_cli_disk_full_names_the_cause(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full)
    code, err = _cli(capsys, "refine", "--config", _config_file(tmp_path), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is it full or read-only?" in err


def test_cli_key_error_is_one_line_and_traceback_shows_it(tmp_path, capsys):
    payload = torch.load(SHIPPED, weights_only=True)
    del payload["models"]["generator"]["arch"]
    payload.pop("sha256", None)
    torch.save(payload, tmp_path / "nokey.pt")
    config = _config_file(tmp_path, gen_type=None, gen_path=str(tmp_path / "nokey.pt"))
    code, err = _cli(capsys, "refine", "--config", config, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing key 'arch'" in err
    with pytest.raises(KeyError):
        main(["refine", "--config", config, "--quiet", "--traceback"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DGFLOW_DEBUG", "1")
        with pytest.raises(KeyError):
            main(["refine", "--config", config, "--quiet"])


def test_cli_interrupt_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import dgflow.runs.refine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dgflow.runs.refine, "run_refine", interrupted)
    code, err = _cli(capsys, "refine", "--config", _config_file(tmp_path), "--quiet")
    assert code == 130 and err.strip() == "dgflow: interrupted; rerun the same command to resume"


def test_cli_interrupt_of_a_command_that_does_not_resume_says_so(tmp_path, capsys, monkeypatch):
    import dgflow.training.toy

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dgflow.training.toy, "train_toy", interrupted)
    code, err = _cli(capsys, "train", "toy", "--dataset", "25gaussians", "--out", str(tmp_path / "toy.pt"))
    assert code == 130 and err.strip() == "dgflow: interrupted; rerun to start again"


# ------------------------------------------------------------------ 14. every config key checked


@pytest.mark.parametrize("key,value,message", [
    ("z_dim", "two", "z_dim must be a whole number >= 1"),
    ("num_classes", 0, "num_classes must be a whole number >= 1"),
    ("name", 123, "name must be a string"),
    ("dataset", "cifar11", "dataset 'cifar11' is unknown"),
    ("device", "gpu", "device 'gpu' is not a device"),
    ("trust_checkpoint", "yes", "trust_checkpoint must be true or false"),
    ("num_imgs", 0, "num_imgs must be a whole number >= 1, got 0"),
    ("heldout_real", -1, "heldout_real must be a whole number >= 0"),
    ("keep_samples", "no", "keep_samples must be true or false"),
    ("gen_kwargs", "z_dim=2", "gen_kwargs must be a mapping"),
    ("options", None, "options must be a mapping"),
    ("space", "pixel", "space must be 'latent' or 'data', got 'pixel'"),
    ("memory_budget_gib", "4G", r"memory_budget_gib must be a number \(or null\)"),
])
def test_config_keys_are_checked(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message):
        _cfg(tmp_path, **{key: value})


@pytest.mark.parametrize("key,value,message", [
    ("steps", 1, "steps must be a whole number >= 2, got 1"),
    ("steps", 2.0, "steps must be a whole number >= 2, got 2.0"),
    ("seed", -1, "seed must be a whole number >= 0"),
    ("S_churn", float("nan"), "S_churn must be a number, got nan"),
    ("rho", True, "rho must be a number, got True"),
    ("boosting", "yes", "boosting must be true or false"),
    ("shape", [], r"shape must be a non-empty list of whole numbers >= 1 \(or null\)"),
    ("shape", [2, 0], "shape must be a non-empty list of whole numbers >= 1"),
    ("disc_kwargs", [1], "disc_kwargs must be a mapping"),
    ("num_classes", 0, "num_classes must be a whole number >= 1"),
    ("name", 123, "name must be a string"),
    ("trust_checkpoint", 1, "trust_checkpoint must be true or false"),
])
def test_sample_config_keys_are_checked_with_the_same_words(key, value, message):
    with pytest.raises(ValueError, match=message):
        validate_sample_config({"denoiser_type": "mlp_denoiser", "disc_type": "mlp_time_discriminator", key: value})


def test_every_config_field_type_has_a_check_and_the_defaults_pass_it():
    from dgflow.config import RunConfig, SampleConfig, check_fields

    for cls in (RunConfig, SampleConfig):
        check_fields(cls(), cls.__name__)  # raises TypeError for an annotation the checks do not know


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_an_error_at_start(tmp_path):
    cfg = _cfg(tmp_path, device="cuda")  # valid to ship (a GPU config), refused when run here
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        run_refine(cfg, progress=False)


def test_exp_root_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = _cfg(tmp_path, exp_root="~/runs")
    assert cfg.exp_root == str(tmp_path / "runs")


# --------------------------------------------------------- 15. counts, flags, dtypes and ids


@pytest.mark.parametrize("iterations", ["0", "-3"])
def test_train_toy_refuses_a_count_that_is_not_positive(tmp_path, capsys, iterations):
    code, err = _cli(capsys, "train", "toy", "--dataset", "25gaussians", "--out", str(tmp_path / "t.pt"),
                     "--iterations", iterations)
    assert code == 2 and "iterations must be a whole number >= 1" in err and not (tmp_path / "t.pt").exists()


def test_eta_true_is_not_a_step_size():
    with pytest.raises(ValueError, match="eta must be a finite number > 0"):
        dgflow.refine(nn.Linear(2, 2), nn.Linear(2, 1), n=2, latent_shape=(2,), eta=True, progress=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_latents_are_drawn_in_the_generators_dtype(dtype):
    g, d = nn.Linear(2, 2).to(dtype), nn.Linear(2, 1).to(dtype)
    res = dgflow.refine(g, d, n=4, latent_shape=(2,), steps=1, progress=False)
    assert res.z.dtype == dtype and res.x.dtype == dtype
    z, _ = dgflow.generate(g, 4, latent_shape=(2,))
    assert z.dtype == dtype
    z32, _ = dgflow.generate(nn.Linear(2, 2), 4, latent_shape=(2,))  # float32 draws are unchanged
    torch.testing.assert_close(z.float(), z32, atol=1e-2, rtol=1e-2)


def test_sample_ids_must_be_distinct_whole_numbers():
    g, d = nn.Linear(2, 2), nn.Linear(2, 1)
    with pytest.raises(ValueError, match="sample_ids holds repeated ids"):
        dgflow.refine(g, d, n=3, latent_shape=(2,), sample_ids=[0, 1, 1], progress=False)
    with pytest.raises(TypeError, match="sample_ids must be whole numbers"):
        dgflow.refine(g, d, n=2, latent_shape=(2,), sample_ids=[0.5, 1.5], progress=False)
    with pytest.raises(ValueError, match="sample_ids holds repeated ids"):
        dgflow.guide(lambda x, s: x, None, 2, shape=(2,), sample_ids=[4, 4], progress=False)


# ----------------------------------------------------------------- 16. stale temp files removed


def test_stale_temp_files_are_removed_at_start(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    stale = [run_dir / "samples" / ".step_0002.npz.abc123.npz.tmp", run_dir / ".config.yml.xyz.yml.tmp",
             run_dir / "batches" / ".ids_00000000-00000008.pt.q.pt.tmp"]
    for f in stale:
        f.write_bytes(b"partial")
    run_refine(cfg, progress=False)
    assert not any(f.exists() for f in stale)
