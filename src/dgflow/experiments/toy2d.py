"""The main job: the 2-D experiments of the DGflow paper (25 Gaussians and Swiss roll).

Base WGAN-GP samples and DOT, DDLS, DRS, MH-GAN and DGflow (KL, JS, logD) on each
dataset, with the shipped 2-D models, scored by % high quality, modes covered, KDE
log-likelihoods and sliced Wasserstein distance; one table, a JSON of the numbers and
a scatter plot per dataset.

The critic. A WGAN critic is a log density ratio only up to an additive constant (its
logits sit near -8 here); the JS and logD scales ``sigmoid(+-d)`` depend on that constant,
so the critic is self-normalised first (:func:`dgflow.self_normalized`: ``E_pg[exp d] = 1``,
which every exact log-ratio satisfies; the other methods are unaffected by the shift).

Step sizes. The image defaults (eta 0.1, gamma 0.01, 25 steps) overshoot on these
critics: the 25 modes are 0.71 apart and 0.018 wide, and eta 0.1 drags most samples into
a few modes (4 of 25 covered); eta 0.01 moves samples onto their nearest mode and keeps
every mode the base model reaches. See ``TOY_SETTINGS`` and the README's sweep.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..api import generate, normalize, refine, select
from ..metrics.toy import KDE_BANDWIDTH, toy_scores
from ..data.toy import sample_toy
from ..zoo.toy import Z_DIM, load_toy


@dataclass
class MethodRun:
    """One column of the comparison: ``kind`` is "base", "refine" or "select"."""

    label: str
    kind: str
    method: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def toy_methods(dataset: str) -> list[MethodRun]:
    """The methods of the paper's 2-D table with the step sizes used for ``dataset``."""
    s = TOY_SETTINGS[dataset]
    runs = [
        MethodRun("base", "base"),
        MethodRun("DOT", "refine", "dot", {"space": "data", **s["dot"]}),
        MethodRun("DDLS", "refine", "ddls", s["ddls"]),
        MethodRun("DRS", "select", "drs", s["drs"]),
        MethodRun("MH-GAN", "select", "mhgan", s["mhgan"]),
    ]
    for f in ("KL", "JS", "logD"):
        runs.append(MethodRun(f"DGflow ({f})", "refine", "dgflow", {**s["dgflow"], "f": f, "eta": DGFLOW_ETA[f]}))
    return runs


# Chosen by benchmarks/toy2d_sweep.py on the shipped models (README, "Step sizes on 2-D critics");
# DOT: the reference demo's settings.
_COMMON = {
    # The reference code's 2-D demo (demo_2d.ipynb): data space, Adam (lr 0.01, betas (0, 0.9)),
    # 100 updates, k_eff = the mean of 10 maxima over 100 pairs, x clipped to [-2, 2] after
    # every update. (Until this was checked the demo ran SGD lr 0.01, the best of the sweep's
    # SGD grid; README, "Fidelity to the reference implementations", has both.)
    "dot": {"optimizer": "adam", "lr": 0.01, "betas": (0.0, 0.9), "steps": 100, "k_eff_rounds": 10,
            "bounds": (-2.0, 2.0)},
    "ddls": {"eps": 0.001, "steps": 100},
    "drs": {"burn_in": 10_000, "percentile": 95.0},
    "mhgan": {"chain_length": 640, "calibration": "isotonic"},
    "dgflow": {"eta": 0.01, "gamma": 0.01, "steps": 25},
}
# JS and logD scale the KL drift by sigmoid(+-d), about 1/2 for a self-normalised ratio,
# so they take twice the KL step.
DGFLOW_ETA = {"KL": 0.01, "JS": 0.02, "logD": 0.02}
TOY_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "25gaussians": {k: dict(v) for k, v in _COMMON.items()},
    "swissroll": {k: dict(v) for k, v in _COMMON.items()},
}


def load_models(dataset: str, path: str | Path | None = None, seed: int = 0):
    """The 2-D generator and its self-normalised critic (``E_pg[exp d] = 1`` on 10,000 samples)."""
    generator, raw_critic, meta = load_toy(dataset, path)
    critic = normalize(generator, raw_critic, 10_000, latent_shape=(Z_DIM,), seed=30_000 + seed, batch_size=10_000)
    return generator, critic, meta


def run_method(run: MethodRun, generator, critic, n: int, seed: int, calibration_real: torch.Tensor,
               progress: bool) -> torch.Tensor:
    if run.kind == "base":  # the same seeded latents every refiner starts from
        return generate(generator, n, latent_shape=(Z_DIM,), seed=seed, batch_size=n)[1]
    if run.kind == "refine":
        return refine(generator, critic, n=n, latent_shape=(Z_DIM,), method=run.method, seed=seed,
                      batch_size=n, save_interval=None, progress=progress, **run.options).x
    extra = {"real": calibration_real} if run.method == "mhgan" else {}
    return select(generator, critic, n, method=run.method, latent_shape=(Z_DIM,), seed=seed,
                  batch_size=n, progress=progress, **extra, **run.options).x


def run_toy2d(out_dir: str | Path = "dgflow-demo", datasets: tuple[str, ...] = ("25gaussians", "swissroll"),
              n: int = 2000, seed: int = 0, progress: bool = True, methods: list[str] | None = None,
              weights: dict[str, str] | None = None, workers: int = 1) -> dict[str, Any]:
    """Run every method on every dataset; write ``results.json``, ``table.md`` and ``<dataset>.png``.

    ``workers > 1``: that many datasets run at once, in threads that share this process's torch threads
    equally (one each on two): the 2-D networks' small products keep one core busier with one thread than two
    cores with two threads that wait for each other, and the threads need no second start-up. Every
    dataset's numbers are those of a sequential run: its work depends only on its own models and seeded
    per-sample streams (the global torch generator is not used).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (samples per method), got {n!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1 (datasets run at once), got {workers!r}")
    unknown = sorted(set(methods or []) - {r.label for r in toy_methods("25gaussians")})
    if unknown:
        raise ValueError(f"unknown method label(s) {unknown}; choose from {[r.label for r in toy_methods('25gaussians')]}")
    out_dir = Path(out_dir)
    workers = min(workers, len(datasets))
    job = functools.partial(run_dataset, out_dir=out_dir, n=n, seed=seed, progress=progress, methods=methods,
                            weights=weights, bars=progress and workers == 1)  # side by side: rows, no bars
    if workers > 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, threads // workers))
        try:
            blocks = side_by_side(job, list(datasets), workers)
        finally:
            torch.set_num_threads(threads)
    else:
        blocks = [job(dataset) for dataset in datasets]
    results: dict[str, Any] = {"n": n, "seed": seed, "kde_bandwidth": KDE_BANDWIDTH,
                               "datasets": dict(zip(datasets, blocks))}
    io.write_json(out_dir / "results.json", results)
    table = format_table(results)
    io.write_text(out_dir / "table.md", table)
    return results


_PLOTTING = threading.Lock()


def side_by_side(job: Callable[..., Any], items: list[str], workers: int) -> list[Any]:
    """``[job(item, cancelled=...) for item in items]``, ``workers`` items at a time in threads; the first error is
    raised here. This thread waits in short joins, so Ctrl-C reaches it at once: it sets ``cancelled()``, which the
    jobs check between methods, and re-raises (the process ends when the methods in progress have finished)."""
    results: list[Any] = [None] * len(items)
    errors: list[BaseException] = []
    stop = threading.Event()
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)

    def work() -> None:
        while not errors and not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[i] = job(items[i], cancelled=stop.is_set)
            except BaseException as exc:  # noqa: BLE001 (re-raised in the calling thread)
                errors.append(exc)

    pool = [threading.Thread(target=work, name=f"dgflow-demo-{k}") for k in range(workers)]
    for t in pool:
        t.start()
    try:
        while any(t.is_alive() for t in pool):
            for t in pool:
                t.join(0.2)
    except BaseException:
        stop.set()
        raise
    if errors:
        raise errors[0]
    return results


def run_dataset(dataset: str, out_dir: Path, n: int, seed: int, progress: bool, methods: list[str] | None,
                weights: dict[str, str] | None, bars: bool = True,
                cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
    """Every method on one dataset: its block of ``results.json``; draws ``<dataset>.png``. ``progress``:
    print each method's row; ``bars``: and the methods' progress bars; ``cancelled()`` true: stop before the next
    method and return None."""
    generator, critic, meta = load_models(dataset, (weights or {}).get(dataset), seed)
    real = sample_toy(dataset, n, seed=10_000 + seed)  # held-out: training used seed + 1000
    calibration_real = sample_toy(dataset, 1000, seed=20_000 + seed)
    samples: dict[str, torch.Tensor] = {}
    rows: dict[str, Any] = {}
    for run in toy_methods(dataset):
        if methods and run.label not in methods and run.kind != "base":
            continue
        if cancelled():  # interrupted while running side by side: stop between methods
            return None
        start = time.perf_counter()
        x = run_method(run, generator, critic, n, seed, calibration_real, progress and bars)
        seconds = time.perf_counter() - start
        samples[run.label] = x
        rows[run.label] = {**toy_scores(dataset, x, real), "seconds": round(seconds, 2),
                           "method": run.method, "options": run.options}
        if progress:
            print(f"  {dataset:12s} {run.label:13s} {_fmt_row(rows[run.label])}", flush=True)
    with _PLOTTING:  # pyplot keeps global state: one figure at a time
        plot_panels(dataset, real, samples, out_dir / f"{dataset}.png", scores=rows)
    return {"model": meta, "critic_offset": critic.offset, "methods": rows}


def _fmt_row(row: dict[str, Any]) -> str:
    hq = "-" if row["high_quality_pct"] is None else f"{row['high_quality_pct']:.1f}%"
    modes = "-" if row["modes"] is None else str(row["modes"])
    return (f"hq {hq:>6s}  modes {modes:>2s}  kde(real|gen) {row['kde_real_under_gen']:8.2f}  "
            f"kde(gen|real) {row['kde_gen_under_real']:6.2f}  swd {row['swd']:.4f}  {row['seconds']:.1f}s")


def format_table(results: dict[str, Any]) -> str:
    """A markdown table of every dataset x method."""
    lines = ["| dataset | method | % high quality | modes (of 25) | KDE real under gen | KDE gen under real "
             "| sliced W1 | time s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for dataset, block in results["datasets"].items():
        for label, row in block["methods"].items():
            hq = "–" if row["high_quality_pct"] is None else f"{row['high_quality_pct']:.1f}"
            modes = "–" if row["modes"] is None else str(row["modes"])
            lines.append(f"| {dataset} | {label} | {hq} | {modes} | {row['kde_real_under_gen']:.2f} | "
                         f"{row['kde_gen_under_real']:.2f} | {row['swd']:.4f} | {row['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def plot_panels(dataset: str, real: torch.Tensor, samples: dict[str, torch.Tensor], path: Path,
                scores: dict[str, dict[str, Any]] | None = None) -> None:
    """Real data, then one scatter panel per method (method samples in red over the base in blue, real
    data in grey underneath), all on the same axes, with each method's scores in its panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import metric_note

    panels = [("real", real)] + list(samples.items())
    cols = int(math.ceil(math.sqrt(len(panels))))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False, sharex=True, sharey=True)
    lim = 1.8 if dataset == "25gaussians" else 2.0
    base = samples.get("base")
    for ax, (label, x) in zip(axes.flat, panels):
        if label != "real":
            ax.scatter(real[:, 0], real[:, 1], s=1, c="0.7", alpha=0.5, linewidths=0)
        if label not in ("real", "base") and base is not None:
            ax.scatter(base[:, 0], base[:, 1], s=1, c="tab:blue", alpha=0.25, linewidths=0)
        color = "black" if label == "real" else ("tab:blue" if label == "base" else "tab:red")
        ax.scatter(x[:, 0], x[:, 1], s=1.5, c=color, alpha=0.6, linewidths=0)
        ax.set_title(label)
        lines = metric_note((scores or {}).get(label, {})).splitlines()
        ax.set_xlabel("\n".join(", ".join(lines[i:i + 2]) for i in range(0, len(lines), 2)), fontsize=8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    fig.suptitle(f"{dataset}: real (black; grey underneath), base WGAN-GP (blue), refined or selected (red)\n"
                 "high quality, modes, KDE: higher is better; sliced W1: lower is better", fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    plt.close(fig)
