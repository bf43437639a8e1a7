"""Training for Discriminator Guidance: an EDM denoiser, and the time-dependent discriminator.

* :func:`train_diffusion` (EDM, Karras et al. 2022, eq. 2 and Table 1): minimise
  ``E lambda(sigma) |D(x0 + sigma n; sigma) - x0|^2`` with ``ln sigma ~ N(P_mean, P_std^2)``
  (EDM: -1.2, 1.2) and ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``.
* :func:`train_time_discriminator` (DG, Kim et al. 2023): binary cross-entropy on real data
  (label 1) and model samples (label 0), each noised as ``x0 + sigma n`` with
  ``ln sigma ~ Uniform(ln sigma_lo, ln sigma_hi)``. This is the authors' importance-sampled
  time: they draw VP time with density proportional to ``beta(t) / (1 - exp(-int beta))``,
  and with ``sigma^2 = exp(int beta) - 1`` that density is ``d ln sigma^2`` (uniform in
  ``ln sigma``); their range ``t in [1e-5, 1]`` is ``sigma in [0.0032, 152]``, ours defaults to
  the sampler's ``[0.002, 80]``. Adam, lr 3e-4 (the authors').

The CLI wrappers (:func:`train_diffusion_run`, :func:`train_tdisc_run`) build the models from
:mod:`dgflow.zoo` by name and write dgflow checkpoints with the architecture recorded.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ..checks import check_int
from ..progress import progress_bar as tqdm

from .. import io
from .checkpointing import SAVE_EVERY_SECONDS, Resumable

TOY = ("25gaussians", "swissroll")


def train_diffusion(denoiser: nn.Module, data: Tensor, labels: Tensor | None = None, *, iterations: int = 2000,
                    batch_size: int = 128, lr: float = 1e-3, P_mean: float = -1.2, P_std: float = 1.2,
                    seed: int = 0, progress: bool = True, log_every: int = 100,
                    checkpoint: Resumable | None = None) -> list[dict[str, float]]:
    """Fit an :class:`~dgflow.diffusion.EDMPrecond` denoiser to ``data`` ``[N, *shape]``; returns the loss log.

    ``checkpoint`` (role ``"denoiser"``): saved every few minutes, on SIGINT / SIGTERM and at the end, and
    resumed from (the loss average of the log entry an interruption falls in covers only its resumed part)."""
    if not hasattr(denoiser, "loss"):
        raise TypeError("train_diffusion trains an EDMPrecond denoiser (with a loss(x0, sigma, noise, labels) method)")
    _check_data(data, labels)
    _check_counts(iterations=iterations, batch_size=batch_size)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(denoiser.parameters(), lr=lr)
    denoiser.train()
    ck = checkpoint or Resumable(None)
    start, log = ck.start({"denoiser": denoiser}, {"opt": opt}, {"rng": gen}, iterations, progress)
    running, since = 0.0, start
    with ck:
        for it in tqdm(range(start + 1, iterations + 1), initial=start, total=iterations, desc="diffusion",
                       disable=None if progress else True):
            idx = torch.randint(len(data), (batch_size,), generator=gen)
            sigma = (torch.randn(batch_size, generator=gen) * P_std + P_mean).exp()
            noise = torch.randn((batch_size, *data.shape[1:]), generator=gen)
            loss = denoiser.loss(data[idx], sigma, noise, None if labels is None else labels[idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item()
            if it % log_every == 0 or it == iterations:
                log.append({"iteration": it, "loss": running / (it - since)})
                running, since = 0.0, it
            ck.step(it, final=it == iterations)
    return log


def train_time_discriminator(discriminator: nn.Module, real: Tensor, fake: Tensor, *,
                             real_labels: Tensor | None = None, fake_labels: Tensor | None = None,
                             iterations: int = 2000, batch_size: int = 128, lr: float = 3e-4,
                             sigma_lo: float = 0.002, sigma_hi: float = 80.0, seed: int = 0,
                             progress: bool = True, log_every: int = 100,
                             checkpoint: Resumable | None = None) -> list[dict[str, float]]:
    """BCE training of ``discriminator(x, sigma, labels) -> logit`` on noised real (1) vs noised model samples (0).

    Every batch holds ``batch_size / 2`` real and ``batch_size / 2`` generated points, each at its
    own ``sigma`` (log-uniform in ``[sigma_lo, sigma_hi]``). Returns the log (loss, accuracy).
    ``checkpoint`` (role ``"discriminator"``): saved every few minutes, on SIGINT / SIGTERM and at the end,
    and resumed from.
    """
    _check_data(real, real_labels)
    _check_data(fake, fake_labels)
    _check_counts(iterations=iterations, batch_size=batch_size)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real samples {tuple(real.shape[1:])} and generated samples {tuple(fake.shape[1:])} differ in shape")
    if (real_labels is None) != (fake_labels is None):
        raise ValueError("a class-conditional discriminator needs labels for both real and generated samples")
    if not 0 < sigma_lo < sigma_hi:
        raise ValueError(f"need 0 < sigma_lo < sigma_hi, got {sigma_lo}, {sigma_hi}")
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in discriminator.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-7)  # the authors' settings
    discriminator.train()
    half = batch_size // 2
    target = torch.cat([torch.ones(half), torch.zeros(half)])
    ck = checkpoint or Resumable(None)
    start, log = ck.start({"discriminator": discriminator}, {"opt": opt}, {"rng": gen}, iterations, progress)
    sums, since = {"loss": 0.0, "accuracy": 0.0}, start
    with ck:
        for it in tqdm(range(start + 1, iterations + 1), initial=start, total=iterations, desc="time discriminator",
                       disable=None if progress else True):
            ir = torch.randint(len(real), (half,), generator=gen)
            jf = torch.randint(len(fake), (half,), generator=gen)
            x0 = torch.cat([real[ir], fake[jf]])
            lab = None if real_labels is None else torch.cat([real_labels[ir], fake_labels[jf]])
            u = torch.rand(2 * half, generator=gen)
            sigma = (math.log(sigma_lo) + u * (math.log(sigma_hi) - math.log(sigma_lo))).exp()
            x = x0 + sigma.reshape(-1, *([1] * (x0.ndim - 1))) * torch.randn(x0.shape, generator=gen)
            logit = discriminator(x, sigma) if lab is None else discriminator(x, sigma, lab)
            loss = F.binary_cross_entropy_with_logits(logit.reshape(-1), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["loss"] += loss.item()
            sums["accuracy"] += ((logit.reshape(-1) > 0).float() == target).float().mean().item()
            if it % log_every == 0 or it == iterations:
                log.append({"iteration": it, **{k: v / (it - since) for k, v in sums.items()}})
                sums, since = {k: 0.0 for k in sums}, it
            ck.step(it, final=it == iterations)
    discriminator.eval()
    return log


def _check_data(data: Tensor, labels: Tensor | None) -> None:
    if not isinstance(data, Tensor) or data.ndim < 2 or len(data) == 0:
        raise ValueError("training data must be a non-empty tensor shaped [N, *shape]")
    if not torch.isfinite(data).all():
        raise ValueError("training data contain NaN or inf")
    if labels is not None and labels.shape != (len(data),):
        raise ValueError(f"labels must hold one class per sample ({len(data)}), got shape {tuple(labels.shape)}")


# ------------------------------------------------------------------------------------- CLI wrappers


def load_training_data(dataset: str, data_root: str | Path | None, n_toy: int = 100_000,
                       seed: int = 0) -> tuple[Tensor, Tensor | None]:
    """Training points: a 2-D dataset (``n_toy`` draws) or MNIST / CIFAR-10 images with labels."""
    if dataset in TOY:
        from ..data.toy import sample_toy

        return sample_toy(dataset, n_toy, seed=seed), None
    if data_root is None:
        raise ValueError(f"dataset {dataset!r} needs --data (the folder or file holding it)")
    from .images import load_images

    return load_images(dataset, data_root)


def train_diffusion_run(dataset: str, out_dir: str | Path, *, data_root: str | Path | None = None, width: int | None = None,
                        conditional: bool = False, iterations: int = 2000, batch_size: int = 128, lr: float = 1e-3,
                        seed: int = 0, progress: bool = True, save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> Path:
    """``dgflow train diffusion``: an EDM denoiser for a 2-D dataset (MLP) or images (U-Net). ``out_dir/checkpoint.pt``
    is written every ``save_every_seconds``, on SIGINT / SIGTERM and at the end; an existing one is resumed."""
    from ..zoo import build_model

    _check_counts(iterations=iterations, batch_size=batch_size)
    data, labels = load_training_data(dataset, data_root, seed=seed)
    n_classes = 0
    if conditional:
        if labels is None:
            raise ValueError(f"{dataset} has no class labels: a conditional denoiser needs an image dataset")
        n_classes = int(labels.max()) + 1
    if dataset in TOY:
        arch, cfg = "mlp_denoiser", {"dim": 2, "width": width or 128, "n_classes": n_classes}
    else:
        arch, cfg = "unet_denoiser", {"channels": data.shape[1], "image_size": data.shape[-1], "width": width or 16,
                                      "n_classes": n_classes}
    torch.manual_seed(seed)
    model = build_model(arch, **cfg)
    out = Path(out_dir) / "checkpoint.pt"
    meta = {"training": "edm", "dataset": dataset, "iterations": iterations, "batch_size": batch_size, "lr": lr}
    ck = Resumable(out, {"denoiser": (arch, cfg)}, meta, every_seconds=save_every_seconds)
    start = time.perf_counter()
    log = train_diffusion(model, data, labels if conditional else None, iterations=iterations, batch_size=batch_size,
                          lr=lr, seed=seed, progress=progress, checkpoint=ck)
    model.eval()
    ck.meta.update(seconds=round(time.perf_counter() - start, 1), log=log)
    ck.save(ck.iteration)
    return out


def train_tdisc_run(denoiser_path: str | Path, dataset: str, out_dir: str | Path, *, data_root: str | Path | None = None,
                    arch: str = "auto", classifier_path: str | Path | None = None, width: int | None = None,
                    conditional: bool = False, fake_samples: int = 5000, steps: int = 18, iterations: int = 2000,
                    batch_size: int = 128, lr: float = 3e-4, seed: int = 0, progress: bool = True,
                    sample_batch: int = 500, fourier: int = 0, fourier_scale: float = 5.0,
                    save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> Path:
    """``dgflow train tdisc``: draw ``fake_samples`` from the denoiser (plain EDM sampler, seed
    ``seed + 7919`` so they differ from evaluation samples), then train the time-dependent
    discriminator on real vs generated (``arch``: ``mlp``, ``conv``, ``classifier`` or ``auto``;
    ``fourier`` / ``fourier_scale``: the MLP's random Fourier input features). ``out_dir/checkpoint.pt`` is
    written every ``save_every_seconds``, on SIGINT / SIGTERM and at the end; an existing one is resumed (the
    generated samples are drawn again, with the same seed)."""
    from ..diffusion import guide
    from ..zoo import build_model, load_checkpoint

    _check_counts(iterations=iterations, batch_size=batch_size, fake_samples=fake_samples)
    models, meta = load_checkpoint(denoiser_path)
    if "denoiser" not in models:
        raise ValueError(f"{denoiser_path} holds {sorted(models)}, no 'denoiser' (train one with `dgflow train diffusion`)")
    denoiser = models["denoiser"]
    real, real_labels = load_training_data(dataset, data_root, n_toy=max(fake_samples, 10_000), seed=seed + 1)
    n_classes = int(getattr(denoiser, "n_classes", 0))
    if conditional and not n_classes:
        raise ValueError("a conditional discriminator needs a conditional denoiser (trained with --conditional)")
    if arch == "auto":
        arch = "mlp" if dataset in TOY else ("classifier" if classifier_path else "conv")
    n_cls = n_classes if conditional else 0
    if arch == "mlp":
        name, cfg = "mlp_time_discriminator", {"dim": real.shape[1], "width": width or 128, "n_classes": n_cls,
                                               "fourier": fourier, "fourier_scale": fourier_scale}
    elif arch == "conv":
        name, cfg = "conv_time_discriminator", {"channels": real.shape[1], "image_size": real.shape[-1],
                                                "width": width or 16, "n_classes": n_cls}
    elif arch == "classifier":
        if classifier_path is None:
            raise ValueError("arch 'classifier' needs --classifier (a checkpoint from `dgflow train classifier`)")
        clf_models, _ = load_checkpoint(classifier_path)
        if "classifier" not in clf_models:
            raise ValueError(f"{classifier_path} holds {sorted(clf_models)}, no 'classifier'")
        clf = clf_models["classifier"]
        clf_cfg = io.load_checkpoint_file(classifier_path)["models"]["classifier"]["config"]
        name, cfg = "classifier_time_discriminator", {"classifier": clf_cfg, "hidden": width or 32, "n_classes": n_cls}
    else:
        raise ValueError(f"unknown discriminator arch {arch!r}; choose mlp, conv, classifier or auto")
    n = fake_samples
    fake_labels = torch.arange(n) % n_classes if n_classes else None
    start = time.perf_counter()
    fake = guide(denoiser, None, n, shape=tuple(real.shape[1:]), labels=fake_labels, steps=steps, seed=seed + 7919,
                 batch_size=sample_batch, progress=progress).x
    sample_seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    disc = build_model(name, **cfg)
    if arch == "classifier":
        disc.load_classifier(clf)
    out = Path(out_dir) / "checkpoint.pt"
    meta = {"training": "time_discriminator", "denoiser": str(denoiser_path), "dataset": dataset, "fake_samples": n,
            "sampler_steps": steps, "iterations": iterations, "lr": lr, "sample_seconds": round(sample_seconds, 1)}
    ck = Resumable(out, {"discriminator": (name, cfg)}, meta, every_seconds=save_every_seconds)
    log = train_time_discriminator(disc, real, fake, real_labels=real_labels if n_cls else None,
                                   fake_labels=fake_labels if n_cls else None, iterations=iterations,
                                   batch_size=batch_size, lr=lr, seed=seed, progress=progress, checkpoint=ck)
    ck.meta.update(train_seconds=round(time.perf_counter() - start - sample_seconds, 1), log=log)
    ck.save(ck.iteration)
    io.write_json(Path(out_dir) / "train_log.json", log)
    return out


def _check_counts(**counts: int) -> None:
    for key, value in counts.items():
        check_int(key, value, 1)
