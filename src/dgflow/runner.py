"""``dgflow refine --config``: a resumable refinement run with its outputs on disk.

Layout of ``exp_root/<name>/``::

    config.yml              the resolved configuration
    fingerprint.txt         a hash of the keys that change the samples and of every checkpoint's bytes
    checkpoints.json        the sha256 of each checkpoint the run loads (a changed file is refused on resume)
    batches/ids_<a>-<b>.pt  finished batches (latents, logits and samples at every kept step; tensors
                            only, loaded with weights_only=True)
    samples/step_<k>.npz    the merged samples after k steps (``x``, ``z``, ``logits``, ``ids``)
    metrics.json            mean logit and dataset metrics per kept step
    metrics.png             the same, as curves (with the held-out real level of an "auto" run)
    auto.json, auto.png     "auto" step size / steps: the choice, why, and the pilot's mean logit vs steps
    grid_step_<k>.png       an image grid (images) or scatter plot (2-D points) per kept step
    sentences_step_<k>.txt  the decoded sentences per kept step (``dataset: text``)
    refinement.gif          the grids over the steps
    tensorboard/            the metrics, grids and "auto" pilot curves as TensorBoard events

One run at a time holds the folder (a lock file ``exp_root/.<name>.lock`` beside it); the
folder is claimed only once the models have loaded. Every file is written atomically, and temp
files an interrupted run left are removed at the next start. A batch file is the unit of work: an interrupted run
restarts with the sample ids no batch file holds yet, and because every sample has its own
random stream the merged result is the same as an uninterrupted run's (whatever the
batch size of either).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import zipfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import yaml
from .progress import progress_bar as tqdm

from . import distributed, io
from .api import normalize, refine, select
from .config import RunConfig, check_device
from .zoo.loading import load_model, resolve_path
from .ratio import DensityRatio
from .tensorboard_log import write_run_events
from .refiners import REFINERS
from .zoo import latent_shape as zoo_latent_shape
from .refiners.auto import autotune, is_auto, plot_pilot
from .plots import BETTER, metric_note, plot_metrics, save_animation, save_grid, scatter_limits, to_uint8  # noqa: F401

# keys that do not change the samples: a run may resume with different values
_NOT_IN_FINGERPRINT = {"exp_root", "name", "device", "batch_size", "keep_samples", "real_samples", "data_root",
                       "fid_ref", "classifier_path", "inception_weights", "max_batch_size", "memory_budget_gib",
                       "trust_checkpoint"}
# the checkpoints whose bytes decide the samples (their sha256 is part of the fingerprint)
_CHECKPOINT_KEYS = ("gen_path", "disc_path", "corr_path")
# speed options that change the numbers (within a tolerance): in the fingerprint only when set, so
# runs made before they existed keep their fingerprint
_ONLY_WHEN_SET = {"autocast": None, "compile": False, "channels_last": False, "heldout_real": 0}


def fingerprint(cfg: Any, exclude: set[str] = _NOT_IN_FINGERPRINT, checkpoints: dict[str, str] | None = None) -> str:
    """A hash of the keys that change the samples and of the checkpoints' sha256 ``{key: sha256}``
    (a run resumes only under the same fingerprint)."""
    items = {k: v for k, v in cfg.fingerprint_items().items()
             if k not in exclude and not (k in _ONLY_WHEN_SET and v == _ONLY_WHEN_SET.get(k))}
    if checkpoints:
        items["checkpoint sha256"] = checkpoints
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_hashes(cfg: Any, keys: tuple[str, ...] = _CHECKPOINT_KEYS) -> dict[str, str]:
    """``{config key: sha256 of the file}`` for each checkpoint path the config sets."""
    return {key: io.file_sha256(resolve_path(getattr(cfg, key))) for key in keys if getattr(cfg, key, None)}


def run_folder(cfg: Any, config_path: str | Path | None) -> Path:
    """``exp_root/<name>``: the name is one folder inside ``exp_root`` (checked again here for API callers)."""
    from .config import check_run_name

    name = cfg.run_name(config_path)
    check_run_name(name)
    return Path(cfg.exp_root).expanduser() / name


def run(cfg: RunConfig, config_path: str | Path | None = None, progress: bool = True,
        overwrite: bool = False, wait: bool = False) -> Path:
    """Run (or resume) the refinement ``cfg`` describes; returns the run folder.

    ``overwrite``: discard whatever the folder holds and start afresh. ``wait``: if another run
    holds the folder, wait for it instead of failing. Under ``torchrun`` every rank refines its
    share of the batches (:mod:`dgflow.distributed`); rank 0 alone locks and claims the folder,
    computes the shared statistics and writes the merged outputs.
    """
    check_device(cfg.device)
    ctx = distributed.init(cfg.device)
    try:
        run_dir = run_folder(cfg, config_path)
        with contextlib.ExitStack() as held:
            distributed.on_main(lambda: held.enter_context(io.run_lock(run_dir, wait)), share=False)
            return _run(cfg, ctx, run_dir, progress and ctx.is_main, overwrite)
    finally:
        distributed.finalize(ctx)


def _run(cfg: RunConfig, ctx: distributed.Context, run_dir: Path, progress: bool, overwrite: bool) -> Path:
    device = ctx.device
    trust = cfg.trust_checkpoint
    generator = load_model("generator", cfg.gen_type, cfg.gen_path, cfg.gen_kwargs, cfg.gen_role, device, trust=trust)
    discriminator = load_model("discriminator", cfg.disc_type, cfg.disc_path, cfg.disc_kwargs, cfg.disc_role, device,
                               trust=trust)
    corrector = (load_model("corrector", cfg.corr_type, cfg.corr_path, cfg.corr_kwargs, cfg.corr_role, device,
                            trust=trust) if cfg.corr_path else None)
    # claim the folder once the models load (a failed start leaves it as it was); fail fast on a missing
    # classifier, reference or vocabulary (only rank 0 measures)
    distributed.on_main(lambda: _claim(run_dir, cfg, overwrite, checkpoints=checkpoint_hashes(cfg)))
    measure = distributed.on_main(lambda: make_metrics(cfg), share=False)
    if cfg.z_dim is not None:
        latent_shape = tuple(cfg.z_dim) if isinstance(cfg.z_dim, (list, tuple)) else (int(cfg.z_dim),)
    else:
        latent_shape = zoo_latent_shape(generator)
    labels = None if cfg.num_classes is None else torch.arange(cfg.num_imgs) % cfg.num_classes
    critic: Any = discriminator
    if cfg.normalize_critic:  # fix an additive constant of the logit: E_pg[exp d] = 1 (once, on rank 0)
        lab = None if labels is None else torch.arange(10_000) % cfg.num_classes
        offset = distributed.on_main(lambda: normalize(
            generator, discriminator, 10_000, latent_shape=latent_shape, prior=cfg.prior, labels=lab,
            corrector=corrector, batch_size=cfg.batch_size, device=device, seed=cfg.seed + 1_000_003).offset)
        critic = DensityRatio(discriminator, corrector, offset=offset)
        corrector = None
    common = dict(latent_shape=latent_shape, prior=cfg.prior, corrector=corrector, batch_size=cfg.batch_size,
                  device=device, seed=cfg.seed, progress=False)
    batch_dir = run_dir / "batches"
    options = cfg.method_options()
    sharded = cfg.method == "mhgan" or bool(options.get("gamma_per_chain"))  # selection by independent chains
    if cfg.method in REFINERS:
        if any(is_auto(v) for v in options.values()):  # choose once (rank 0), then every batch uses the same values
            options = distributed.on_main(
                lambda: tune_once(run_dir, cfg, generator, critic, labels, common, options, progress))
        todo = distributed.on_main(lambda: _pending(batch_dir, cfg.num_imgs))  # one listing for every rank
        options = {**options, **distributed.on_main(lambda: shared_statistics(cfg, generator, critic, common, options))}
        mine = distributed.shard(list(todo.split(cfg.batch_size)) if len(todo) else [], ctx.rank, ctx.world_size)
        with tqdm(total=sum(len(ids) for ids in mine), desc=f"{cfg.method} ({run_dir.name})",
                  disable=None if progress else True) as bar:
            for ids in mine:
                began = time.perf_counter()
                res = refine(generator, critic, n=len(ids), sample_ids=ids, method=cfg.method, space=cfg.space,
                             labels=None if labels is None else labels[ids], save_interval=cfg.save_interval,
                             keep_samples=True, speed=cfg.speed_options(), **common, **options)
                save_batch(batch_dir / f"ids_{int(ids[0]):08d}-{int(ids[-1]) + 1:08d}.pt",
                           {"ids": ids, "steps": res.steps, "z": res.z_history, "x": res.x_history,
                            "logits": res.logit_history}, res.info)
                _record_seconds(run_dir, f"ids_{int(ids[0]):08d}-{int(ids[-1]) + 1:08d}", began)
                bar.update(len(ids))
        distributed.barrier()  # every batch is on disk before rank 0 merges
    elif _selects(ctx, batch_dir, sharded):
        # independent chains (MH-GAN, DRS per chain) are split over the ranks; DRS's default rule is
        # sequential in its proposals (its running maximum): rank 0 selects alone. Rank 0 saves.
        real = _real_samples(cfg, cfg.real_samples) if cfg.method == "mhgan" else None
        began = time.perf_counter()
        res = select(generator, critic, cfg.num_imgs, method=cfg.method, labels=labels, real=real, shard=sharded,
                     **{k: v for k, v in common.items() if k != "progress"}, progress=progress, **options)
        if ctx.is_main:
            save_batch(batch_dir / "selection.pt", {"ids": torch.arange(cfg.num_imgs), "steps": [0], "z": res.z[None],
                                                     "x": res.x[None], "logits": res.logits[None]},
                       {"acceptance_rate": res.acceptance_rate, **res.info})
            _record_seconds(run_dir, "selection", began)
    if ctx.is_main:  # the other ranks are done: they exit instead of waiting (and timing out) for the merge
        finish(run_dir, cfg, progress, measure)
    return run_dir


def _selects(ctx: distributed.Context, batch_dir: Path, sharded: bool) -> bool:
    """Whether this rank takes part in the selection: every rank when ``sharded``, else rank 0 only."""
    pending = lambda: not (batch_dir / "selection.pt").exists()  # noqa: E731
    return bool(distributed.on_main(pending)) if sharded else ctx.is_main and pending()


def shared_statistics(cfg: RunConfig, generator: Any, critic: Any, common: dict[str, Any],
                      options: dict[str, Any]) -> dict[str, Any]:
    """Options every batch shares, computed once for the whole run: DOT's ``k_eff`` (unless the config
    sets it), from the run's seed and, for a conditional run, all its classes. Passing it to each batch
    keeps batches (and ranks) from estimating their own."""
    if cfg.method != "dot" or options.get("k_eff") is not None:
        return {}
    classes = None if cfg.num_classes is None else torch.arange(cfg.num_classes)
    res = refine(generator, critic, n=1 if classes is None else len(classes), method="dot", space=cfg.space,
                 labels=classes, save_interval=None, keep_samples=False, **common,
                 **{**options, "steps": 0})
    return {"k_eff": res.info["k_eff"]}


def tune_once(run_dir: Path, cfg: RunConfig, generator: Any, critic: Any, labels: torch.Tensor | None,
              common: dict[str, Any], options: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Resolve "auto" options with one pilot (:func:`dgflow.autotune`); kept in ``auto.json`` for resumes."""
    path = run_dir / "auto.json"
    if path.exists():
        return json.loads(path.read_text())["options"]
    heldout = _real_samples(cfg, cfg.heldout_real, seed_offset=40_000) if cfg.heldout_real else None
    classes = None if labels is None else torch.arange(cfg.num_classes)
    chosen, evidence = autotune(generator, critic, cfg.method, labels=classes, heldout=heldout, **common, **options)
    io.write_json(path, {"options": chosen, "auto": evidence})
    plot_pilot(evidence, run_dir / "auto.png")
    if progress:
        print(f"{run_dir.name}: auto: {evidence['reason']}", flush=True)
    return chosen


def _claim(run_dir: Path, cfg: Any, overwrite: bool, exclude: set[str] = _NOT_IN_FINGERPRINT,
           checkpoints: dict[str, str] | None = None) -> None:
    """Create the run folder, or check that an existing one belongs to the same configuration and
    the same checkpoint bytes (``{config key: sha256}``); ``overwrite`` discards the folder first.
    Call with the folder's lock held."""
    stamp = run_dir / "fingerprint.txt"
    mine = fingerprint(cfg, exclude, checkpoints)
    if overwrite:
        io.discard_folder(run_dir)
    elif stamp.exists() and stamp.read_text().strip() != mine:
        recorded_file = run_dir / "checkpoints.json"
        recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else None
        if recorded is None:
            raise ValueError(f"{run_dir} holds a run with a different configuration (or one made by a dgflow that "
                             "did not record its checkpoints' sha256); set another name/exp_root, or pass "
                             "--overwrite to discard it")
        for key, sha in (checkpoints or {}).items():
            old = recorded.get(key)
            if old and old["path"] == getattr(cfg, key) and old["sha256"] != sha:
                raise ValueError(f"{key} {old['path']} has changed since {run_dir} was started (sha256 "
                                 f"{old['sha256'][:12]}... then, {sha[:12]}... now), so its results would mix two "
                                 "models; restore the file, or pass --overwrite to start the run again")
        raise ValueError(f"{run_dir} holds a run with a different configuration; set another name/exp_root, "
                         "or pass --overwrite to discard it")
    elif not stamp.exists() and any((run_dir / "batches").rglob("*.pt")):
        raise ValueError(f"{run_dir} holds batch files but no fingerprint.txt, so whose they are is unknown; "
                         "pass --overwrite to discard them, or set another name/exp_root")
    run_dir.mkdir(parents=True, exist_ok=True)
    io.remove_stale_temp_files(run_dir)
    io.write_text(run_dir / "config.yml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    io.write_json(run_dir / "checkpoints.json", {key: {"path": getattr(cfg, key), "sha256": sha}
                                                 for key, sha in (checkpoints or {}).items()})
    io.write_text(stamp, mine + "\n")


def save_batch(path: Path, tensors: dict[str, Any], info: dict[str, Any] | None = None) -> None:
    """One finished batch: tensors, lists of step numbers and ``info`` reduced to JSON values (so the
    file loads with ``weights_only=True``); every tensor is saved compactly (a slice of the run's id
    list is stored as its own ids, not the whole list)."""
    own = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in tensors.items()}
    own["info"] = json.loads(json.dumps(info or {}, default=io._jsonable))
    io.torch_save(own, path)


def load_batch(path: Path) -> dict[str, Any]:
    """A batch file of :func:`save_batch`, loaded without running code (``weights_only=True``)."""
    part = io.load_torch_file(path, what="batch file", mmap=True,
                              hint="dgflow writes batch files of tensors only: delete it to recompute its batch")
    if not isinstance(part, dict) or "ids" not in part:
        raise ValueError(f"batch file {path} is not one dgflow wrote (no ids); delete it to recompute that batch")
    part["info"] = part.get("info") or {}
    return part


def _record_seconds(run_dir: Path, name: str, began: float) -> None:
    """The wall time of one batch, kept apart from the outputs so that those stay byte-reproducible."""
    io.write_json(run_dir / "timing" / f"{name}.json", {"seconds": round(time.perf_counter() - began, 3)})


def _batch_files(batch_dir: Path) -> list[Path]:
    return sorted(batch_dir.glob("ids_*.pt")) + sorted(batch_dir.glob("selection.pt"))


def _pending(batch_dir: Path, n: int) -> torch.Tensor:
    done = torch.zeros(n, dtype=torch.bool)
    for f in _batch_files(batch_dir):
        m = re.fullmatch(r"ids_(\d+)-(\d+)\.pt", f.name)
        if m:
            done[int(m.group(1)):min(int(m.group(2)), n)] = True
    return torch.nonzero(~done).flatten()


def finish(run_dir: Path, cfg: RunConfig, progress: bool = True,
           measure: Callable[[torch.Tensor], dict[str, float]] | None = None) -> dict[str, Any]:
    """Merge the batch files into per-step samples, metrics, grids and the animation."""
    parts = [load_batch(f) for f in _batch_files(run_dir / "batches")]
    parts = [p for p in parts if len(p["ids"]) and int(p["ids"][0]) < cfg.num_imgs]
    if not parts:
        raise RuntimeError(f"{run_dir} has no finished batches to merge")
    steps = parts[0]["steps"]
    ids = torch.cat([p["ids"] for p in parts])
    order = torch.argsort(ids)
    metrics: dict[str, Any] = {"steps": steps, "mean_logit": [], "dataset": {}}
    seconds = [json.loads(f.read_text())["seconds"] for f in sorted((run_dir / "timing").glob("*.json"))]
    if seconds:  # the method's wall time summed over batches (and ranks), apart from metrics.json
        io.write_json(run_dir / "timing.json", {"method_seconds": round(sum(seconds), 2), "batches": len(seconds)})
    measure = measure or make_metrics(cfg)
    frames = []
    for k, step in enumerate(steps):
        x = torch.cat([p["x"][k] for p in parts])[order]
        z = torch.cat([p["z"][k] for p in parts])[order] if parts[0]["z"] is not None else None
        logits = torch.cat([p["logits"][k] for p in parts])[order]
        metrics["mean_logit"].append(float(logits.mean()))
        if cfg.keep_samples or k == len(steps) - 1:
            _save_samples(run_dir / "samples" / f"step_{step:04d}.npz", x, z, logits, ids[order],
                          None if cfg.num_classes is None else ids[order] % cfg.num_classes)
        for name, value in measure(x).items():
            metrics["dataset"].setdefault(name, []).append(value)
        if cfg.dataset == "text":  # sentences instead of a picture
            io.write_text(run_dir / f"sentences_step_{step:04d}.txt", "\n".join(text_vocabulary(cfg)[0].decode(x)) + "\n")
        else:
            frames.append(run_dir / f"grid_step_{step:04d}.png")
            save_grid(x, frames[-1], title=f"{run_dir.name}: step {step}", real=_plot_real(cfg),
                      note=metric_note({k: v[-1] for k, v in metrics["dataset"].items()}))
    infos = [p["info"] for p in parts if p.get("info")]
    if infos:
        metrics["info"] = infos[0] if len(infos) == 1 else {"per_batch": infos}
    if (run_dir / "auto.json").exists():
        evidence = json.loads((run_dir / "auto.json").read_text())["auto"]
        metrics["auto"] = {k: evidence[k] for k in ("chosen", "reason", "level", "level_source")}
    io.write_json(run_dir / "metrics.json", metrics)
    plot_metrics(metrics, run_dir / "metrics.png")
    if len(frames) > 1:
        save_animation(frames, run_dir / "refinement.gif")
    write_run_events(run_dir, metrics)  # tensorboard/: the same curves and grids, for `tensorboard --logdir`
    return metrics


def _plot_real(cfg: RunConfig) -> torch.Tensor | None:
    """Real points drawn under a 2-D run's scatter plots (held out as the metrics' are; fixes the axes)."""
    if cfg.dataset not in ("25gaussians", "swissroll"):
        return None
    from .toy.data import sample_toy

    return sample_toy(cfg.dataset, 2000, seed=10_000 + cfg.seed)


def _save_samples(path: Path, x: torch.Tensor, z: torch.Tensor | None, logits: torch.Tensor, ids: torch.Tensor,
                  labels: torch.Tensor | None = None) -> None:
    arrays = {"x": to_uint8(x) if x.ndim == 4 else x.numpy(), "logits": logits.numpy(), "ids": ids.numpy()}
    if labels is not None:  # conditional runs: sample i has class i % num_classes (as EDM saves "labels")
        arrays["labels"] = labels.numpy()
    if z is not None:
        arrays["z"] = z.numpy()
    def write(tmp: str) -> None:  # np.savez, with a fixed time stamp so equal arrays give equal bytes
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                with zf.open(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                             force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)

    io.write_with(path, write)


def make_metrics(cfg: RunConfig) -> Callable[[torch.Tensor], dict[str, float]]:
    """The metrics of a run's samples: 2-D datasets get the toy metrics; image runs get Inception FID
    against ``fid_ref`` (mu/sigma npz) and classifier FID / IS with the classifier at ``classifier_path``
    against the real test split under ``data_root``."""
    if cfg.dataset in ("25gaussians", "swissroll"):
        from .experiments.toy2d import score
        from .toy.data import sample_toy

        real = sample_toy(cfg.dataset, min(cfg.num_imgs, 10_000), seed=10_000 + cfg.seed)
        return lambda x: {k: float(v) for k, v in score(cfg.dataset, x, real).items() if v is not None}
    if cfg.dataset == "text":
        from .experiments.text import real_sentences, score_text

        vocab, meta = text_vocabulary(cfg)
        real, _ = real_sentences(meta)
        return lambda x: score_text(vocab.decode(x, strip=False), real)
    parts: list[Callable[[torch.Tensor], dict[str, float]]] = []
    device = distributed.rank_device(cfg.device)
    from .metrics import (ClassifierFeatures, InceptionFeatures, compute_stats, extract_features, fid_from_stats,
                          inception_score, load_stats)

    if cfg.fid_ref:
        ref = load_stats(resolve_path(cfg.fid_ref))
        weights = getattr(cfg, "inception_weights", None)  # `dgflow sample` configs have no such key
        inception = InceptionFeatures(weights and resolve_path(weights), device=device)
        parts.append(lambda x: {"fid_inception": fid_from_stats(
            *compute_stats(extract_features(inception, x, batch_size=cfg.batch_size)), *ref)})
    if cfg.classifier_path:
        if cfg.data_root is None:
            raise ValueError("classifier metrics need the real data: set data_root (a folder holding the dataset: "
                             "`dgflow data mnist --out DIR`)")
        classifier = ClassifierFeatures(load_model("classifier", "classifier", cfg.classifier_path, {}, "classifier",
                                                   device, trust=getattr(cfg, "trust_checkpoint", False)))
        real = load_real_images(cfg, "test")
        with torch.no_grad():
            real_stats = compute_stats(torch.cat([classifier(c.to(device)).cpu() for c in real.split(cfg.batch_size)]))

        def classifier_metrics(x: torch.Tensor) -> dict[str, float]:
            with torch.no_grad():
                feats = torch.cat([classifier(c.to(device)).cpu() for c in x.split(cfg.batch_size)])
                logits = torch.cat([classifier.logits(c.to(device)).cpu() for c in x.split(cfg.batch_size)])
            is_mean, _ = inception_score(logits, splits=min(10, len(logits)))
            return {"fid_classifier": fid_from_stats(*compute_stats(feats), *real_stats), "is_classifier": is_mean}

        parts.append(classifier_metrics)
    return lambda x: {k: v for part in parts for k, v in part(x).items()}


def text_vocabulary(cfg: RunConfig):
    """The vocabulary (and training record) saved with a text GAN checkpoint (``gen_path``)."""
    from .text import Vocabulary

    payload = io.load_checkpoint_file(resolve_path(cfg.gen_path), trust=cfg.trust_checkpoint)
    meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
    if "vocabulary" not in meta:
        raise ValueError(f"dataset: text needs a checkpoint from `dgflow train textgan` (with its vocabulary) as "
                         f"gen_path; {cfg.gen_path} has none")
    return Vocabulary.from_meta(meta["vocabulary"]), meta


def load_real_images(cfg: RunConfig, split: str) -> torch.Tensor:
    """The real images of the run's ``dataset`` split under ``data_root``, in [-1, 1]."""
    from .data import load_cifar10, load_mnist, load_stl10

    loaders = {"mnist": load_mnist, "cifar10": load_cifar10, "stl10": load_stl10}
    if cfg.dataset not in loaders:
        raise ValueError(f"no image loader for dataset {cfg.dataset!r}; use one of {sorted(loaders)}")
    return loaders[cfg.dataset](resolve_path(cfg.data_root), split=split)[0]


def _real_samples(cfg: RunConfig, count: int, seed_offset: int = 20_000) -> torch.Tensor:
    """``count`` held-out real samples (MH-GAN's chains and calibration, the "auto" stopping level)."""
    if cfg.dataset in ("25gaussians", "swissroll"):
        from .toy.data import sample_toy

        return sample_toy(cfg.dataset, count, seed=seed_offset + cfg.seed)
    if cfg.data_root is None:
        raise ValueError("held-out real samples (MH-GAN, heldout_real) need the data: set data_root (and dataset: "
                         "mnist or cifar10), or use a 2-D dataset")
    real = load_real_images(cfg, "test")
    generator = torch.Generator().manual_seed(cfg.seed + seed_offset - 20_000)  # MH-GAN: the seed as before
    return real[torch.randperm(len(real), generator=generator)[:count]]
