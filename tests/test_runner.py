"""``dgflow refine --config``: validation, outputs, resume, user models by import path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dgflow.cli import main
from dgflow.config import load_config, validate
from dgflow.runs.refine import run_refine
from dgflow.zoo.toy import load_toy

TOY = {"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
       "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
       "eta": 0.01, "steps": 4, "save_interval": 2, "num_imgs": 48, "batch_size": 16, "name": "t"}


def _cfg(tmp_path, **kw):
    return validate({**TOY, "exp_root": str(tmp_path), **kw})


def _selector_cfg(tmp_path, **kw):
    """A selector's config: the DGflow keys eta and steps do not apply to it."""
    return validate({**{k: v for k, v in TOY.items() if k not in ("eta", "steps")}, "exp_root": str(tmp_path), **kw})


def test_validation_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['etaa'\]"):
        validate({**TOY, "etaa": 1})
    with pytest.raises(ValueError, match="eta must be a finite number > 0 or 'auto', got 'big'"):
        validate({**TOY, "eta": "big"})
    with pytest.raises(ValueError, match="method 'dfglow' is unknown"):
        validate({**TOY, "method": "dfglow"})
    with pytest.raises(ValueError, match="eta must be a finite number > 0"):
        validate({**TOY, "eta": -0.1})
    with pytest.raises(ValueError, match="gen_type .* or gen_path .* is required"):
        validate({k: v for k, v in TOY.items() if not k.startswith("gen_")})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['epss'\] for method 'ddls'; ddls's options are eps, "):
        validate({**{k: v for k, v in TOY.items() if k != "eta"}, "method": "ddls", "options": {"epss": 1}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(bad)


# ------------------------------------------------- a method's options: its dataclass fields, the flat keys aliases


def test_a_flat_key_that_does_not_apply_to_the_method_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match=r"config: eta does not apply to method ddls \(eta sets dgflow's eta\); "
                                         r"ddls's options are eps, steps, .*: set them as options: \{eps: \.\.\.\}"):
        validate({**TOY, "method": "ddls"})
    with pytest.raises(ValueError, match=r"f_div, eta, gamma do not apply to method dot .*options: \{lr: \.\.\.\}"):
        validate({**TOY, "method": "dot", "f_div": "KL", "gamma": 0.01})
    with pytest.raises(ValueError, match=r"steps does not apply to method mhgan \(steps sets dgflow/ddls/dot's "
                                         r"steps\); mhgan's options are chain_length, calibration"):
        validate({**{k: v for k, v in TOY.items() if k != "eta"}, "method": "mhgan"})


def test_an_option_given_as_a_flat_key_and_in_options_is_an_error():
    with pytest.raises(ValueError, match=r"dgflow's eta is given twice, as eta: 0.01 and in options: \{eta: 0.02\}; "
                                         "keep one"):
        validate({**TOY, "options": {"eta": 0.02}})
    with pytest.raises(ValueError, match="ddls's steps is given twice, as steps: 4 and in options"):
        validate({**{k: v for k, v in TOY.items() if k != "eta"}, "method": "ddls", "options": {"steps": 9}})


def test_every_flat_key_names_an_option_of_each_method_it_applies_to():
    from dgflow.config import FLAT_KEYS, METHODS, method_fields

    for key, (methods, name) in FLAT_KEYS.items():
        assert methods and set(methods) <= set(METHODS), key
        for method in methods:
            assert name in [f.name for f in method_fields(method)], (key, method)


def test_flat_keys_are_aliases_of_the_method_options():
    flat = validate({**TOY, "f_div": "JS", "gamma": 0.0})
    nested = validate({**{k: v for k, v in TOY.items() if k not in ("eta", "steps")},
                       "options": {"f": "JS", "eta": 0.01, "gamma": 0.0, "steps": 4}})
    assert flat.method_options() == {"f": "JS", "eta": 0.01, "gamma": 0.0, "steps": 4} == nested.method_options()
    assert flat.to_dict() == nested.to_dict()  # one config, one config.yml and one fingerprint
    ddls = validate({**{k: v for k, v in TOY.items() if k != "eta"}, "method": "ddls", "options": {"eps": 0.001}})
    assert ddls.method_options() == {"steps": 4, "eps": 0.001}  # steps is every refiner's


def test_the_method_alone_holds_the_defaults_and_checks_the_values():
    from dgflow.refiners import DDLS, DGflow

    bare = {k: v for k, v in TOY.items() if k not in ("eta", "steps")}
    assert validate(bare).method_options() == {}  # no second copy of eta 0.1, gamma 0.01, steps 25
    assert validate({**bare, "method": "ddls"}).method_options() == {}  # so DDLS runs its own 100 steps
    assert DGflow().steps == 25 and DDLS().steps == 100
    with pytest.raises(ValueError, match="config: method dgflow: gamma must be a finite number >= 0, got -1"):
        validate({**bare, "gamma": -1})
    with pytest.raises(ValueError, match="config: method ddls: .*metropolis=True needs noise_scale=1"):
        validate({**bare, "method": "ddls", "options": {"metropolis": True, "noise_scale": 0.5}})


# fingerprints dgflow 0.2 computed (before the method options came from the dataclasses): unchanged, so
# run folders made then resume
OLD_FINGERPRINTS = {
    "dgflow": ({"method": "dgflow", "f_div": "JS", "eta": 0.01, "gamma": 0.01, "steps": 6, "normalize_critic": True},
               "1e417073578e86b4"),
    "dgflow-auto": ({"method": "dgflow", "eta": "auto", "steps": 6, "normalize_critic": True}, "d97fe65a3ca2b87b"),
    "ddls": ({"method": "ddls", "steps": 6, "options": {"eps": 0.01, "metropolis": True}}, "9ebe5ee2cba3090d"),
    "dot": ({"method": "dot", "space": "data", "steps": 6,
             "options": {"lr": 0.01, "optimizer": "adam", "k_eff_pairs": 50}}, "258a7365e525ff34"),
    "mhgan": ({"method": "mhgan", "options": {"chain_length": 20}}, "378a282ac65666fd"),
}


@pytest.mark.parametrize("name", sorted(OLD_FINGERPRINTS))
def test_fingerprints_of_unchanged_configs_are_those_of_earlier_versions(name):
    from dgflow.runs.generator import FINGERPRINT

    def fingerprint(cfg):  # without checkpoint hashes, as recorded
        return FINGERPRINT.of(cfg)

    base = {"dataset": "25gaussians", "gen_type": "mlp_generator", "gen_path": "pkg:toy/weights/25gaussians.pt",
            "disc_type": "mlp_discriminator", "disc_path": "pkg:toy/weights/25gaussians.pt", "z_dim": 2,
            "save_interval": 3, "num_imgs": 40, "batch_size": 16, "exp_root": "exps", "name": name}
    extra, expected = OLD_FINGERPRINTS[name]
    assert fingerprint(validate({**base, **extra})) == expected
    root = Path(__file__).resolve().parents[1] / "configs"
    assert fingerprint(load_config(root / "toy-25gaussians.yml")) == "7fd7eb7debe98fd2"


def test_set_method_leaves_out_the_flat_keys_of_the_method_the_file_was_written_for():
    path = Path(__file__).resolve().parents[1] / "configs" / "toy-25gaussians.yml"  # dgflow: f_div, eta, gamma, steps
    cfg = load_config(path, {"method": "ddls", "options": {"eps": 0.001}})
    assert cfg.method_options() == {"steps": 25, "eps": 0.001}  # steps applies to DDLS too
    assert load_config(path, {"method": "mhgan"}).method_options() == {}
    with pytest.raises(ValueError, match="eta does not apply to method ddls"):  # given with the switch: an error
        load_config(path, {"method": "ddls", "eta": 0.1})


def test_run_writes_every_output_and_matches_the_api(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == [0, 2, 4]
    assert len(metrics["dataset"]["high_quality_pct"]) == 3
    for name in ("config.yml", "metrics.png", "refinement.gif", "grid_step_0000.png", "grid_step_0004.png",
                 "samples/step_0000.npz", "samples/step_0004.npz"):
        assert (run_dir / name).stat().st_size > 0, name
    saved = yaml.safe_load((run_dir / "config.yml").read_text())
    assert saved["eta"] == 0.01 and validate(saved) == cfg  # the saved config.yml is a config of the same run
    final = np.load(run_dir / "samples" / "step_0004.npz")
    assert np.array_equal(final["ids"], np.arange(48))
    # the run is dgflow.refine with the same seed and sample ids
    import dgflow

    g, d, _ = load_toy("25gaussians")
    ref = dgflow.refine(g, d, n=48, latent_shape=(2,), eta=0.01, steps=4, batch_size=16, progress=False)
    np.testing.assert_array_equal(final["x"], ref.x.numpy())


def test_interrupted_run_resumes_without_redoing_finished_batches(tmp_path):
    cfg = _cfg(tmp_path)
    run_dir = run_refine(cfg, progress=False)
    first = np.load(run_dir / "samples" / "step_0004.npz")["x"]
    batches = sorted((run_dir / "batches").glob("ids_*.pt"))
    assert len(batches) == 3
    kept = {b: b.stat().st_mtime_ns for b in batches[:2]}
    batches[2].unlink()  # as if the run died before its last batch
    run_refine(cfg, progress=False)
    assert {b: b.stat().st_mtime_ns for b in batches[:2]} == kept  # finished batches untouched
    np.testing.assert_array_equal(np.load(run_dir / "samples" / "step_0004.npz")["x"], first)


def test_a_changed_configuration_does_not_mix_with_an_old_run(tmp_path):
    run_refine(_cfg(tmp_path), progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        run_refine(_cfg(tmp_path, eta=0.02), progress=False)
    run_refine(_cfg(tmp_path, eta=0.02), progress=False, overwrite=True)
    assert yaml.safe_load((tmp_path / "t" / "config.yml").read_text())["eta"] == 0.02


def test_selectors_and_user_model_by_import_path(tmp_path):
    g, d, _ = load_toy("25gaussians")
    torch.save(g.state_dict(), tmp_path / "g.pt")  # a plain state dict, not a dgflow checkpoint
    cfg = _selector_cfg(tmp_path, method="mhgan", gen_type="dgflow.zoo.mlp:MLPGenerator", gen_kwargs={"z_dim": 2},
               gen_path=str(tmp_path / "g.pt"), options={"chain_length": 20}, real_samples=200, name="mh")
    run_dir = run_refine(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == [0] and 0 < metrics["info"]["acceptance_rate"] <= 1
    with pytest.raises(ValueError, match="does not match the MLPGenerator architecture"):
        run_refine(_cfg(tmp_path, gen_type="dgflow.zoo.mlp:MLPGenerator", gen_kwargs={"z_dim": 3},
                 gen_path=str(tmp_path / "g.pt"), name="bad"), progress=False)
    with pytest.raises(ValueError, match="cannot import"):
        run_refine(_cfg(tmp_path, gen_type="no_such_pkg:G", gen_path=str(tmp_path / "g.pt"), name="bad2"), progress=False)


def test_cli_refine_with_overrides(tmp_path, capsys):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({**TOY, "exp_root": str(tmp_path)}))
    assert main(["refine", "--config", str(path), "--set", "steps=2", "num_imgs=16", "--quiet"]) == 0
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["steps"] == [0, 2]
    assert main(["refine", "--config", str(path), "--set", "f_div=XX", "--quiet"]) == 2
    assert "unknown f-divergence 'XX'" in capsys.readouterr().err
    assert main(["refine", "--config", str(path), "--set", "options={eps:", "--quiet"]) == 2
    assert "is not valid YAML" in capsys.readouterr().err


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="shared MNIST copy not found at ../shared/data")
def test_image_run_measures_classifier_and_inception_fid(tmp_path):
    from dgflow.metrics import save_stats
    from dgflow.zoo import build_model, save_checkpoint

    torch.manual_seed(0)
    g_cfg, d_cfg, c_cfg = {"channels": 1, "image_size": 28, "z_dim": 8, "width": 8}, \
        {"channels": 1, "image_size": 28, "width": 8}, {"channels": 1, "image_size": 28, "width": 8}
    save_checkpoint(tmp_path / "gan.pt", {"generator": ("dcgan_generator", g_cfg, build_model("dcgan_generator", **g_cfg)),
                                          "discriminator": ("sndcgan_discriminator", d_cfg,
                                                            build_model("sndcgan_discriminator", **d_cfg))})
    save_checkpoint(tmp_path / "clf.pt", {"classifier": ("classifier", c_cfg, build_model("classifier", **c_cfg))})
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((64, 2048))
    save_stats(tmp_path / "ref.npz", feats.mean(0), np.cov(feats.T))
    cfg = validate({"dataset": "mnist", "gen_path": str(tmp_path / "gan.pt"), "disc_path": str(tmp_path / "gan.pt"),
                    "z_dim": 8, "steps": 2, "save_interval": 2, "num_imgs": 8, "batch_size": 8, "exp_root": str(tmp_path),
                    "name": "img", "data_root": str(SHARED), "classifier_path": str(tmp_path / "clf.pt"),
                    "fid_ref": str(tmp_path / "ref.npz")})
    run_dir = run_refine(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("fid_classifier", "is_classifier", "fid_inception"):
        assert len(metrics["dataset"][key]) == 2 and all(np.isfinite(metrics["dataset"][key])), key
    assert 1.0 <= metrics["dataset"]["is_classifier"][0] <= 10.0  # IS lies between 1 and the class count
    assert np.load(run_dir / "samples" / "step_0002.npz")["x"].shape == (8, 28, 28, 1)  # uint8 HWC, as EDM saves
    assert (run_dir / "grid_step_0002.png").exists()


def test_text_run_scores_js_per_step_and_writes_sentences(tmp_path):
    from dgflow.training.textgan import train_textgan

    train_textgan("pydoc", tmp_path / "t.pt", channels=4, blocks=1, iterations=1, batch_size=8, progress=False)
    cfg = validate({"dataset": "text", "gen_path": str(tmp_path / "t.pt"), "disc_path": str(tmp_path / "t.pt"),
                    "z_dim": 128, "steps": 2, "save_interval": 1, "num_imgs": 16, "batch_size": 16,
                    "exp_root": str(tmp_path), "name": "txt", "normalize_critic": True})
    run_dir = run_refine(cfg, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["dataset"]["js4"]) == 3 and all(0 <= v <= 1 for v in metrics["dataset"]["js6"])
    lines = (run_dir / "sentences_step_0002.txt").read_text().splitlines()
    assert len(lines) == 16 and all(len(line) <= 32 for line in lines)
    with pytest.raises(ValueError, match="needs a checkpoint from `dgflow train textgan`"):
        run_refine(validate({**TOY, "dataset": "text", "exp_root": str(tmp_path), "name": "bad"}), progress=False)
    assert not list((tmp_path / "bad" / "batches").glob("*.pt"))  # failed before any work


def test_every_shipped_config_is_valid():
    from dgflow.config import load_config

    configs = [p for p in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yml"))
               if not p.name.startswith("dg-")]  # dg-*: `dgflow sample` configs, checked in test_diffusion_train_run
    assert len(configs) >= 8
    for path in configs:
        cfg = load_config(path)
        assert cfg.gen_path or cfg.gen_type, path


def test_flow_run_reads_its_image_shaped_latent_from_the_checkpoint(tmp_path):
    """A RealNVP's latent has the image's shape; the runner reads it from the model (no z_dim key)."""
    from dgflow.zoo import build_model, save_checkpoint

    torch.manual_seed(0)
    f_cfg = {"channels": 1, "image_size": 28, "width": 4, "levels": 1, "couplings": 2}
    d_cfg = {"channels": 1, "image_size": 28, "width": 4}
    save_checkpoint(tmp_path / "flow.pt", {"generator": ("realnvp", f_cfg, build_model("realnvp", **f_cfg))})
    save_checkpoint(tmp_path / "d.pt", {"discriminator": ("sndcgan_discriminator", d_cfg,
                                                          build_model("sndcgan_discriminator", **d_cfg))})
    cfg = validate({"dataset": "mnist", "gen_path": str(tmp_path / "flow.pt"), "disc_path": str(tmp_path / "d.pt"),
                    "corr_path": str(tmp_path / "d.pt"), "corr_role": "discriminator", "steps": 2,
                    "save_interval": 1, "num_imgs": 4, "batch_size": 4, "exp_root": str(tmp_path), "name": "flow"})
    run_dir = run_refine(cfg, progress=False)
    samples = np.load(run_dir / "samples" / "step_0002.npz")
    assert samples["z"].shape == (4, 1, 28, 28) and samples["x"].shape == (4, 28, 28, 1)
    assert json.loads((run_dir / "timing.json").read_text())["method_seconds"] > 0


def test_conditional_run_keeps_each_samples_label(tmp_path):
    """With num_classes, sample i is refined under class i % num_classes and saved with that label."""
    from dgflow.zoo import build_model, save_checkpoint

    torch.manual_seed(0)
    g_cfg = {"channels": 1, "image_size": 28, "z_dim": 8, "width": 4, "n_classes": 3}
    d_cfg = {"channels": 1, "image_size": 28, "width": 4, "n_classes": 3}
    g, d = build_model("cond_dcgan_generator", **g_cfg), build_model("cond_sndcgan_discriminator", **d_cfg)
    save_checkpoint(tmp_path / "c.pt", {"generator": ("cond_dcgan_generator", g_cfg, g),
                                        "discriminator": ("cond_sndcgan_discriminator", d_cfg, d)})
    cfg = validate({"dataset": "mnist", "gen_path": str(tmp_path / "c.pt"), "disc_path": str(tmp_path / "c.pt"),
                    "num_classes": 3, "steps": 2, "save_interval": 2, "num_imgs": 6, "batch_size": 4,
                    "exp_root": str(tmp_path), "name": "cond"})
    run_dir = run_refine(cfg, progress=False)
    final = np.load(run_dir / "samples" / "step_0002.npz")
    assert final["labels"].tolist() == [0, 1, 2, 0, 1, 2]
    # the refined latents are those dgflow.refine gives with the same labels (batching does not matter)
    from dgflow import refine

    g.eval(), d.eval()
    res = refine(g, d, n=6, latent_shape=(8,), labels=torch.arange(6) % 3, steps=2, progress=False)
    np.testing.assert_allclose(final["z"], res.z.numpy(), rtol=0, atol=1e-6)


def test_rerunning_a_finished_run_only_merges_again(tmp_path):
    cfg = validate({**TOY, "exp_root": str(tmp_path), "num_imgs": 8, "steps": 1, "save_interval": 1})
    run_dir = run_refine(cfg, progress=False)
    before = (run_dir / "samples" / "step_0001.npz").read_bytes()
    assert run_refine(cfg, progress=False) == run_dir  # no batch left to do: nothing is refined
    assert (run_dir / "samples" / "step_0001.npz").read_bytes() == before


def test_cli_methods_lists_every_method_and_guidance(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("dgflow", "ddls", "dot", "drs", "mhgan", "dgflow.guide", "w_euler=2.0"):
        assert name in out, name


def test_existing_run_folders_keep_their_fingerprint():
    """Users resume run folders made by earlier versions: the fingerprint of a configuration (with its
    checkpoints' sha256) is the one dgflow 0.2.0 wrote to fingerprint.txt (values recorded with it)."""
    from dgflow.config import validate_sample_config
    from dgflow.runs.generator import FINGERPRINT as REFINE
    from dgflow.runs.sample import FINGERPRINT as SAMPLE

    cfg = validate(TOY)
    checkpoints = REFINE.checkpoint_hashes(cfg)
    assert sorted(checkpoints) == ["disc_path", "gen_path"] and checkpoints["gen_path"].startswith("d710f1e670d9")
    assert REFINE.of(cfg, checkpoints) == "1670f7363c87ba09"
    assert REFINE.of(validate({**TOY, "eta": "auto", "heldout_real": 100}), checkpoints) == "525f4c25fe55b3e3"
    sample = validate_sample_config({"denoiser_type": "mlp_denoiser", "denoiser_kwargs": {"dim": 2},
                                     "dg_weight_1st_order": 0.0, "shape": [2], "num_samples": 30})
    assert SAMPLE.of(sample, SAMPLE.checkpoint_hashes(sample)) == "42c728e70b831204"
    # keys that do not change the samples leave it as it is
    assert REFINE.of(validate({**TOY, "batch_size": 5, "device": "cpu"}), checkpoints) == "1670f7363c87ba09"
