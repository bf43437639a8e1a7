"""GAN training for image models: hinge, non-saturating or WGAN-GP losses, optionally conditional,
optionally with DDLS-refined fake latents, logged to TensorBoard, checkpointed and resumable.

    for it = 1 .. iterations:
        repeat n_dis times:                                   (z refined by DDLS first when ddls_steps > 0)
            hinge:     L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]
            ns:        L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))]
            wgan-gp:   L_D = E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2]
        hinge, wgan-gp: L_G = -E[D(G(z))]          ns: L_G = E[softplus(-D(G(z)))]

Defaults are the SN-DCGAN settings of the papers: Adam 2e-4, betas (0, 0.9), 5
discriminator steps, batch 64. ``ddls_steps > 0`` reproduces the unofficial DDLS cGAN
training ("train_DDLS"): the fake samples shown to D come from latents refined by
``ddls_steps`` Langevin steps (step ``ddls_eps``, noise scale ``ddls_noise``) on the current
G and D.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ..progress import progress_bar as tqdm

from .. import io
from ..zoo.mmd import mmd_loss
from .checkpointing import SAVE_EVERY_SECONDS, Resumable
from ..zoo.ocf import ocf_distance
from .wgan_gp import gradient_penalty

LOSSES = ("hinge", "ns", "wgan-gp", "mmd", "ocf")


@dataclass
class GANTraining:
    """The settings of :func:`train_gan` (the papers' SN-DCGAN defaults)."""
    loss: str = "hinge"
    iterations: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_dis: int = 5
    gp_weight: float = 10.0
    clip: float = 0.0  # clip critic weights to [-clip, clip] after each step (Li et al.'s MMD-GAN: 0.01); 0 = off
    ddls_steps: int = 0
    ddls_eps: float = 0.01
    ddls_noise: float = 0.1
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for key in ("iterations", "batch_size", "n_dis", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.clip < 0:
            raise ValueError(f"clip must be >= 0 (0 turns weight clipping off), got {self.clip}")
        if self.ddls_steps < 0:
            raise ValueError(f"ddls_steps must be >= 0, got {self.ddls_steps}")


def discriminator_loss(loss: str, d_real: Tensor, d_fake: Tensor, frequencies: Tensor | None = None) -> Tensor:
    """The critic's loss on its outputs for a real and a fake batch (features ``[B, k]`` for ``"mmd"``, ``"ocf"``;
    ``"ocf"`` also takes the critic's frequencies ``[m, k]``)."""
    if loss == "ocf":  # the critic maximises the characteristic-function distance (features and sigma)
        return -ocf_distance(d_real.flatten(1), d_fake.flatten(1), frequencies)
    if loss == "mmd":  # the critic maximises MMD^2 between real and fake features
        return -mmd_loss(d_real.flatten(1), d_fake.flatten(1))
    if loss == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if loss == "ns":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return d_fake.mean() - d_real.mean()


def generator_loss(loss: str, d_fake: Tensor, d_real: Tensor | None = None, frequencies: Tensor | None = None) -> Tensor:
    """The generator's loss (``"mmd"``, ``"ocf"`` need the critic's features of a real batch, ``d_real``)."""
    if loss == "ocf":
        return ocf_distance(d_real.flatten(1), d_fake.flatten(1), frequencies)
    if loss == "mmd":
        return mmd_loss(d_real.flatten(1), d_fake.flatten(1))
    return F.softplus(-d_fake).mean() if loss == "ns" else -d_fake.mean()


def train_gan(generator: nn.Module, discriminator: nn.Module, data: Tensor, z_dim: int, settings: GANTraining,
              out_dir: str | Path, labels: Tensor | None = None, models_meta: dict[str, Any] | None = None,
              progress: bool = True, save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> list[dict[str, float]]:
    """Train in place; logs, sample grids and ``checkpoint.pt`` go to ``out_dir`` (resumes from it).

    ``models_meta``: ``{"generator": (arch, config), "discriminator": (arch, config)}`` recorded in
    the checkpoint so that it loads with :func:`dgflow.zoo.load_checkpoint`. The checkpoint is
    written every ``settings.checkpoint_every`` iterations, every ``save_every_seconds`` and on
    SIGINT / SIGTERM (then :class:`KeyboardInterrupt` is raised); a larger ``settings.iterations``
    continues a finished run.
    """
    from tensorboardX import SummaryWriter

    from ..api import refine
    from ..plots import save_grid

    out_dir = Path(out_dir)
    device = next(generator.parameters()).device
    conditional = labels is not None
    s = settings
    opt_g = torch.optim.Adam(generator.parameters(), lr=s.lr, betas=s.betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=s.lr, betas=s.betas)
    rng = torch.Generator().manual_seed(s.seed)
    meta = models_meta or {"generator": (type(generator).__name__, {}),
                           "discriminator": (type(discriminator).__name__, {})}
    ck = Resumable(out_dir / "checkpoint.pt", meta, {"training": asdict(s), "z_dim": z_dim, "conditional": conditional},
                   every_seconds=save_every_seconds)
    start, log = ck.start({"generator": generator, "discriminator": discriminator}, {"opt_g": opt_g, "opt_d": opt_d},
                          {"rng": rng}, s.iterations, progress)
    writer = SummaryWriter(str(out_dir / "tensorboard"))
    fixed_z = torch.randn(64, z_dim, generator=torch.Generator().manual_seed(s.seed + 1)).to(device)
    fixed_y = (torch.arange(64) % int(labels.max() + 1)).to(device) if conditional else None

    def batch() -> tuple[Tensor, Tensor | None]:
        idx = torch.randint(len(data), (s.batch_size,), generator=rng)
        return data[idx].to(device), (labels[idx].to(device) if conditional else None)

    def fake_latents(y: Tensor | None) -> Tensor:
        z = torch.randn(s.batch_size, z_dim, generator=rng).to(device)
        if s.ddls_steps:
            seed = int(torch.randint(2**31 - 1, (), generator=rng))
            z = refine(generator, discriminator, z, method="ddls", eps=s.ddls_eps, steps=s.ddls_steps,
                       noise_scale=s.ddls_noise, labels=y, seed=seed, save_interval=None, keep_samples=False,
                       progress=False, device=device).z.to(device)
        return z

    def call(model: nn.Module, inp: Tensor, y: Tensor | None) -> Tensor:
        return model(inp) if y is None else model(inp, y)

    begin = time.perf_counter()
    with ck:
        bar = tqdm(range(start + 1, s.iterations + 1), initial=start, total=s.iterations, desc=f"GAN ({s.loss})",
                   disable=None if progress else True)
        for it in bar:
            generator.train()
            discriminator.train()
            for _ in range(s.n_dis):
                real, y = batch()
                z = fake_latents(y)
                with torch.no_grad():
                    fake = call(generator, z, y)
                d_real, d_fake = call(discriminator, real, y), call(discriminator, fake, y)
                freqs = discriminator.frequencies(rng) if s.loss == "ocf" else None
                loss_d = discriminator_loss(s.loss, d_real, d_fake, freqs)
                if s.loss == "wgan-gp":
                    critic = discriminator if y is None else (lambda x, y=y: discriminator(x, y))
                    loss_d = loss_d + s.gp_weight * gradient_penalty(critic, real, fake, rng)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                if s.clip:
                    with torch.no_grad():
                        for name, p in discriminator.named_parameters():
                            if name not in getattr(discriminator, "unclipped_parameters", ()):
                                p.clamp_(-s.clip, s.clip)
            real, y = batch()
            for p in discriminator.parameters():
                p.requires_grad_(False)
            d_real_g = call(discriminator, real, y) if s.loss in ("mmd", "ocf") else None
            loss_g = generator_loss(s.loss, call(discriminator, call(generator, torch.randn(
                s.batch_size, z_dim, generator=rng).to(device), y), y), d_real_g,
                discriminator.frequencies(rng) if s.loss == "ocf" else None)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            for p in discriminator.parameters():
                p.requires_grad_(True)
            if not (math.isfinite(loss_d.item()) and math.isfinite(loss_g.item())):
                raise FloatingPointError(f"GAN training diverged at iteration {it} (loss_d={loss_d.item()}, "
                                         f"loss_g={loss_g.item()}); lower lr or check the data range ([-1, 1])")
            if it % s.log_every == 0 or it == s.iterations:
                entry = {"iteration": it, "loss_d": loss_d.item(), "loss_g": loss_g.item(),
                         "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item(),
                         "seconds": round(time.perf_counter() - begin, 1)}
                log.append(entry)
                for key, value in entry.items():
                    if key != "iteration":
                        writer.add_scalar(f"train/{key}", value, it)
            if it % s.sample_every == 0 or it == s.iterations:
                generator.eval()
                with torch.no_grad():
                    grid = call(generator, fixed_z, fixed_y).cpu()
                save_grid(grid, out_dir / "samples" / f"iter_{it:07d}.png", title=f"iteration {it}")
                writer.add_images("samples", ((grid.clamp(-1, 1) + 1) / 2).numpy(), it)
            ck.step(it, final=it == s.iterations, scheduled=it % s.checkpoint_every == 0)
    writer.close()
    generator.eval()
    discriminator.eval()
    io.write_json(out_dir / "train_log.json", log)
    return log


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read the scalars of TensorBoard event files without TensorBoard: ``{tag: [(step, value), ...]}``
    (:func:`dgflow.tensorboard_log.read_events`)."""
    from ..tensorboard_log import read_events

    return read_events(logdir)["scalars"]
