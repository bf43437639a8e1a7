"""The CLI as a pip user meets it: help for every option, --version, shipped configs (pkg:), the data
command (offline and already-present paths; no network), and the summary each command ends with."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import dgflow
from dgflow import cli
from dgflow.cli import build_parser, config_file, main

ROOT = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser, path=("dgflow",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_option_of_every_command_has_help():
    missing = [f"{' '.join(path)} {a.option_strings or a.dest}" for path, p in _parsers(build_parser())
               for a in p._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert missing == []


def test_help_shows_defaults_and_classifier_offers_only_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "classifier", "--help"])
    text = capsys.readouterr().out
    assert "--epochs EPOCHS" in text and "(default: 2)" in text and "(default: 128)" in text
    assert "--z-dim" not in text and "--iterations" not in text


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"dgflow {dgflow.__version__}"


def test_pkg_configs_resolve_and_an_unknown_one_lists_the_shipped_ones():
    path = Path(config_file("pkg:configs/toy-25gaussians.yml"))
    assert path.is_file() and path.name == "toy-25gaussians.yml"
    assert config_file("my.yml") == "my.yml"
    with pytest.raises(FileNotFoundError, match="pkg:configs/dg-mnist.yml"):
        config_file("pkg:configs/nope.yml")


def test_refine_ends_with_the_metrics_table_and_the_files_it_wrote(tmp_path, capsys):
    code = main(["refine", "--config", "pkg:configs/toy-25gaussians.yml", "--set", "num_imgs=200", "steps=5",
                 f"exp_root={tmp_path}"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    header = next(line for line in out if line.lstrip().startswith("step"))
    assert "high quality %" in header and "modes" in header
    assert any(line.split()[:1] == ["5"] for line in out)  # the row of the last step
    assert "higher is better: high quality %" in "\n".join(out)
    assert out[-1].startswith(f"{tmp_path}/toy-25gaussians/: ") and "metrics.json" in out[-1]
    assert all(name in os.listdir(tmp_path / "toy-25gaussians") for name in ("refinement.gif", "metrics.png"))


def test_the_last_line_lists_only_files_that_exist(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "step_0000.npz").write_bytes(b"")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "sentences_step_0000.txt").write_text("a\n")
    line = cli._files(tmp_path)
    assert line == f"{tmp_path}/: metrics.json, samples/ (1 files), sentences_step_0000.txt"


def test_set_method_warns_about_keys_written_for_another_method():
    config = str(ROOT / "configs" / "toy-25gaussians.yml")  # method: dgflow, steps: 25 (the README's example)
    warnings = cli.method_override_warnings(config, {"method": "ddls"})
    assert any("steps: 25" in w and "steps=100" in w for w in warnings)
    assert any("f_div, eta, gamma in" in w and "do not apply to ddls: left out" in w for w in warnings)
    assert not any("steps" in w for w in cli.method_override_warnings(config, {"method": "ddls", "steps": 50}))
    assert cli.method_override_warnings(config, {"eta": 0.2}) == []
    assert cli.method_override_warnings(config, {"method": "dgflow"}) == []


def test_methods_lists_each_method_options_and_defaults_from_its_dataclass_and_the_config_keys(capsys):
    import dataclasses

    from dgflow.refiners import REFINERS
    from dgflow.selectors import SELECTORS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name, cls in {**REFINERS, **SELECTORS}.items():
        defaults = lines[lines.index(next(line for line in lines if line.startswith(f"  {name} "))) + 1]
        for f in dataclasses.fields(cls):
            assert (f"{f.name}={f.default!r}" in defaults) == f.init, (name, f.name)  # every option, nothing else
    assert "config: f_div (= f), eta, gamma, steps at the top level; the others under options:" in out
    assert "config: steps at the top level; the others under options: (e.g. options: {eps: 0.01})" in out
    assert "config: every option under options: (e.g. options: {chain_length: 640})" in out


def test_methods_lists_descriptions_and_the_f_choices(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "Langevin" in out and "rejection sampling" in out
    assert "KL, JS, logD, chi2" in out
    dot_demo = next(line for line in out.splitlines() if "`dgflow demo` (2-D) uses: optimizer='adam'" in line)
    assert "steps=100" in dot_demo  # DOT: library default 10 steps, the demo the authors' 100


# ------------------------------------------------------------------------------------------ data


def test_data_offline_explains_which_file_to_place_where(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    assert main(["data", "mnist", "--out", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz" in err
    assert str(tmp_path / "data" / "mnist.npz") in err and "no route to host" in err
    assert not any(p.name.startswith(".part") for p in (tmp_path / "data").iterdir())


def _tiny_mnist(folder: Path, n: int = 256) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "mnist.npz", x_train=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
             y_train=(np.arange(n) % 10).astype(np.uint8), x_test=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             y_test=(np.arange(64) % 10).astype(np.uint8))
    return folder


def test_data_already_present_is_checked_not_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("must not download"))
    folder = _tiny_mnist(tmp_path / "data")
    assert main(["data", "mnist", "--out", str(folder)]) == 0
    assert f"already present in {folder}/" in capsys.readouterr().out


def test_a_download_is_checked_before_it_is_kept(tmp_path, monkeypatch, capsys):
    from dgflow.data import download

    source = _tiny_mnist(tmp_path / "server") / "mnist.npz"
    with pytest.raises(ValueError, match="holds 256 training images, expected 60000"):
        download.fetch("mnist", tmp_path / "data", url=source.as_uri())
    assert list((tmp_path / "data").iterdir()) == []


# -------------------------------------------------------------------------------------- training


def test_train_classifier_prints_its_accuracy(tmp_path, capsys):
    data = _tiny_mnist(tmp_path / "data")
    assert main(["train", "classifier", "--dataset", "mnist", "--data", str(data), "--out", str(tmp_path / "clf"),
                 "--epochs", "1", "--width", "4", "--batch-size", "64", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "% after 1 epochs" in out
    assert f"{tmp_path / 'clf'}/: checkpoint.pt" in out


def test_train_diffusion_and_tdisc_print_their_final_losses(tmp_path, capsys):
    assert main(["train", "diffusion", "--dataset", "25gaussians", "--out", str(tmp_path / "den"),
                 "--iterations", "20", "--width", "16", "--batch-size", "32"]) == 0
    assert "final (iteration 20): loss " in capsys.readouterr().out
    assert main(["train", "tdisc", "--dataset", "25gaussians", "--denoiser", str(tmp_path / "den" / "checkpoint.pt"),
                 "--out", str(tmp_path / "td"), "--iterations", "10", "--width", "16", "--batch-size", "32",
                 "--fake-samples", "64", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "final (iteration 10): loss " in out and "accuracy " in out


def test_textgan_out_is_a_folder_and_a_pt_path_still_works(tmp_path, monkeypatch, capsys):
    import dgflow.training.textgan as textgan

    written = []

    class Fake:
        meta = {"train_sentences": 1, "seconds": 0.0, "final_log": {"iteration": 1, "wasserstein": 0.5}}

        class vocabulary:
            size = 3

    monkeypatch.setattr(textgan, "train_textgan", lambda corpus, out, **kw: written.append(Path(out)) or Fake)
    assert main(["train", "textgan", "--out", str(tmp_path / "run")]) == 0
    assert main(["train", "textgan", "--out", str(tmp_path / "old.pt")]) == 0
    assert written == [tmp_path / "run" / "checkpoint.pt", tmp_path / "old.pt"]
    captured = capsys.readouterr()
    assert "--out now takes a folder" in captured.err and "wasserstein 0.5" in captured.out


def test_ctrl_c_of_dgflow_train_gan_saves_and_a_rerun_resumes(tmp_path):
    """End to end: SIGINT to a running `dgflow train gan` leaves a checkpoint; the same command resumes."""
    data = _tiny_mnist(tmp_path / "data")
    cmd = [sys.executable, "-m", "dgflow", "train", "gan", "--dataset", "mnist", "--data", str(data),
           "--out", str(tmp_path / "gan"), "--width", "4", "--z-dim", "8", "--batch-size", "16", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd + ["--iterations", "100000"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        seen = []
        for line in proc.stderr:  # off a terminal the progress is logged; the ETA line comes inside the loop
            seen.append(line)
            if "steps left at" in line:
                break
        else:
            pytest.fail("no ETA line: " + "".join(seen))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    saved = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=False)["training"]["iteration"]
    assert saved >= 1
    again = subprocess.run(cmd + ["--iterations", str(saved + 2)], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming {tmp_path / 'gan' / 'checkpoint.pt'} at iteration {saved} of {saved + 2}" in again.stdout
    assert f"final (iteration {saved + 2}): loss_d" in again.stdout


def test_sigterm_of_dgflow_train_diffusion_saves_and_a_rerun_resumes(tmp_path):
    """The other trainers too (here `train diffusion`, SIGTERM as a batch system sends it)."""
    cmd = [sys.executable, "-m", "dgflow", "train", "diffusion", "--dataset", "25gaussians", "--out",
           str(tmp_path / "den"), "--width", "8", "--batch-size", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd + ["--iterations", "10000000"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "steps left at" in line:
                break
        else:
            pytest.fail("no ETA line: " + "".join(seen))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    saved = torch.load(tmp_path / "den" / "checkpoint.pt", weights_only=True)["training"]["iteration"]
    assert saved >= 1
    again = subprocess.run(cmd + ["--iterations", str(saved + 3)], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming {tmp_path / 'den' / 'checkpoint.pt'} at iteration {saved} of {saved + 3}" in again.stdout
    assert f"final (iteration {saved + 3}): loss" in again.stdout
