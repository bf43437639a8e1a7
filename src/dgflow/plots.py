"""Plots and images of runs and training: image grids and 2-D scatters, metric curves, GIFs.

One home for what the runners, the trainers and the experiments draw; it imports no runner or trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], ``[N, C, H, W]`` -> uint8 ``[N, H, W, C]`` (the layout EDM and DG save)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_grid(x: torch.Tensor, path: Path, title: str = "", max_images: int = 64, real: torch.Tensor | None = None,
              limits: tuple[float, float, float, float] | None = None, note: str = "") -> None:
    """An image grid for ``[N, C, H, W]`` images in [-1, 1], or a scatter plot for 2-D points.

    2-D only: ``real`` points are drawn underneath in grey, ``limits`` (x0, x1, y0, y1) fix the axes
    (default: :func:`scatter_limits` of ``real``, so that every plot of a run shares them), ``note``
    (e.g. the metric values) is written in the panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x.ndim == 4:
        imgs = to_uint8(x[:max_images])
        n = len(imgs)
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        h, w, c = imgs.shape[1:]
        canvas = np.zeros((rows * (h + 2), cols * (w + 2), c), dtype=np.uint8)
        for i, img in enumerate(imgs):
            r, q = divmod(i, cols)
            canvas[r * (h + 2) + 1:r * (h + 2) + 1 + h, q * (w + 2) + 1:q * (w + 2) + 1 + w] = img
        from PIL import Image

        io.write_with(path, lambda tmp: Image.fromarray(canvas.squeeze(-1) if c == 1 else canvas).save(tmp, "PNG"))
        return
    fig, ax = plt.subplots(figsize=(4, 4))
    pts = x.reshape(len(x), -1)[:, :2].numpy()
    if real is not None:
        ref = real.reshape(len(real), -1)[:, :2].numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=1, c="0.6", alpha=0.4, linewidths=0, label="real")
        limits = limits or scatter_limits(real)
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5, c="tab:red" if real is not None else None, linewidths=0,
               label="samples")
    if limits is not None:
        ax.set_xlim(*limits[:2])
        ax.set_ylim(*limits[2:])
    if real is not None:
        ax.legend(loc="upper right", fontsize=7, markerscale=6, frameon=False)
    if note:
        ax.set_xlabel(note.replace("\n", ", "), fontsize=7)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    io.save_figure(fig, path, dpi=100)
    plt.close(fig)


# which way each dataset metric improves (plots and the CLI's summary tables say so)
BETTER = {"high_quality_pct": "higher", "modes": "higher", "kde_real_under_gen": "higher",
          "kde_gen_under_real": "higher", "is_classifier": "higher", "swd": "lower", "fid_inception": "lower",
          "fid_classifier": "lower", "js4": "lower", "js6": "lower"}


def scatter_limits(real: torch.Tensor, margin: float = 0.15) -> tuple[float, float, float, float]:
    """Square axis limits around 2-D ``real`` points (their extent plus ``margin`` of it on each side)."""
    pts = real.reshape(len(real), -1)[:, :2]
    lo, hi = pts.min(0).values, pts.max(0).values
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * (1 + margin)
    return (float(centre[0]) - half, float(centre[0]) + half, float(centre[1]) - half, float(centre[1]) + half)


def metric_note(values: dict[str, float]) -> str:
    """The metrics of one panel, as short text (``high quality 93.5%  modes 23 ...``)."""
    labels = {"high_quality_pct": "high quality {:.1f}%", "modes": "modes {:.0f}", "swd": "sliced W1 {:.3f}",
              "kde_real_under_gen": "KDE real|gen {:.2f}", "fid_inception": "FID {:.2f}",
              "fid_classifier": "classifier FID {:.2f}", "is_classifier": "classifier IS {:.2f}"}
    return "\n".join(labels[k].format(v) for k, v in values.items() if k in labels and v is not None)


def save_animation(frames: list[Path], path: Path, ms_per_frame: int = 400) -> None:
    """An animated GIF of the image files ``frames``, in order."""
    from PIL import Image

    images = [Image.open(f).convert("RGB") for f in frames]
    io.write_with(path, lambda tmp: images[0].save(tmp, "GIF", save_all=True, append_images=images[1:],
                                                   duration=ms_per_frame, loop=0))


def plot_metrics(metrics: dict[str, Any], path: Path) -> None:
    """One curve per metric over the kept steps, each titled with the direction that is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"mean logit": metrics["mean_logit"], **metrics["dataset"]}
    better = BETTER
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3), squeeze=False)
    if "auto" in metrics:  # the level the "auto" stop aimed at
        source = metrics["auto"]["level_source"]
        axes[0][0].axhline(metrics["auto"]["level"], color="k", ls=":", lw=1,
                           label="held-out real" if "held-out" in source else "importance-weighted real")
        axes[0][0].legend(fontsize=7)
    for ax, (name, values) in zip(axes[0], curves.items()):
        ax.plot(metrics["steps"], values, marker="o")
        ax.set_xlabel("step")
        ax.set_title(name + (f" ({better[name]} is better)" if name in better else ""), fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=100)
    plt.close(fig)


def plot_variants(values: dict[str, dict[str, float]], path: Path) -> None:
    """One bar chart per metric, a bar per variant (``dgflow sample``'s ``metrics.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for v in values.values() for k in v})
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3 * max(1, len(names)), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        variants = [v for v in values if name in values[v]]
        ax.bar(variants, [values[v][name] for v in variants], color=["C1" if v == "guided" else "C0" for v in variants])
        for i, v in enumerate(variants):
            ax.annotate(f"{values[v][name]:.3g}", (i, values[v][name]), ha="center", fontsize=7,
                        va="bottom" if values[v][name] >= 0 else "top")
        ax.set_title(name + (f" ({BETTER[name]} is better)" if name in BETTER else ""), fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=100)
    plt.close(fig)


def plot_pilot(auto: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Mean logit vs steps of every pilot run, the stopping level and the chosen stop (``info["auto"]``); below it,
    with the distance stop, the distance to the held-out samples with its error band (+- one jackknife error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_distance = auto.get("stop_rule") == "distance"
    fig, axes = plt.subplots(2 if by_distance else 1, 1, figsize=(5.5, 6.4 if by_distance else 3.6), sharex=True,
                             squeeze=False)
    ax = axes[0, 0]
    opt = auto["step_option"]
    for t in auto["trials"]:
        style = {"lw": 2.2} if t["accepted"] else {"lw": 1, "alpha": 0.7, "ls": "--"}
        ax.plot(range(len(t["mean_logit"])), t["mean_logit"], label=f"{opt}={t['size']:g}", **style)
    ax.axhline(auto["level"], color="k", lw=1, ls=":", label="level (held-out real)" if "held-out" in
               auto["level_source"] else "level (importance-weighted)")
    ax.axvline(auto["chosen"]["steps"], color="tab:red", lw=1, alpha=0.6, label=f"stop: {auto['chosen']['steps']}")
    ax.set_ylabel("mean logit of pilot samples")
    ax.set_title(title or f"auto: {opt}={auto['chosen'][opt]:g}, steps={auto['chosen']['steps']}", fontsize=9)
    ax.legend(fontsize=7)
    if by_distance:
        ax = axes[1, 0]
        for k, t in enumerate(auto["trials"]):
            if not t.get("distance"):
                continue
            d, se = torch.tensor(t["distance"]), torch.tensor(t["distance_se"])
            style = {"lw": 2.2} if t["accepted"] else {"lw": 1, "alpha": 0.7, "ls": "--"}
            line, = ax.plot(t["distance_steps"], d, color=f"C{k}", label=f"{opt}={t['size']:g}", **style)
            ax.fill_between(t["distance_steps"], d - se, d + se, color=line.get_color(), alpha=0.15)
        ax.axvline(auto["chosen"]["steps"], color="tab:red", lw=1, alpha=0.6)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"MMD$^2$ to {auto['heldout']} held-out (+- 1 se)")
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    plt.close(fig)
