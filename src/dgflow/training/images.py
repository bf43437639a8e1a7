"""Training entry points for the image experiments (``dgflow train gan|vae|classifier|corrector``).

Each builds its models from :mod:`dgflow.zoo` by name, trains on MNIST or CIFAR-10 in [-1, 1]
and writes a dgflow checkpoint that records the architectures (so ``dgflow refine --config``
can load it with ``gen_path`` / ``disc_path`` alone). CPU defaults finish in minutes on MNIST
at a reduced ``width``; the papers' settings (width 64, batch 64, 5 D steps, Adam 2e-4,
betas (0, 0.9), ~100k iterations) are for a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ..progress import progress_bar as tqdm

from .. import io
from ..distributed import rank_device
from ..zoo import build_model, latent_shape, load_checkpoint, save_checkpoint
from .checkpointing import SAVE_EVERY_SECONDS, Resumable
from .corrector import train_corrector
from .gan import GANTraining, train_gan

GAN_PAIRS = {  # name -> (generator arch, discriminator arch, conditional)
    "sndcgan": ("dcgan_generator", "sndcgan_discriminator", False),
    "wgangp": ("dcgan_generator", "wgangp_critic", False),
    "resnet": ("resnet_generator", "resnet_discriminator", False),
    "cond-sndcgan": ("cond_dcgan_generator", "cond_sndcgan_discriminator", True),
    "mmd": ("mmd_generator", "mmd_critic", False),  # vector-valued critic: refine through a corrector
    "ocf": ("ocf_generator", "ocf_critic", False),  # likewise (characteristic-function distance)
}
PAIR_DEFAULTS = {"wgangp": {"loss": "wgan-gp"}, "mmd": {"loss": "mmd", "clip": 0.01}, "ocf": {"loss": "ocf", "clip": 0.01}}
FLOW_ARCHS = ("realnvp", "glow")  # `dgflow train flow --arch`: zoo architecture names


def load_images(dataset: str, data_root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images in [-1, 1], labels)`` of MNIST, CIFAR-10 or STL-10's ``split`` under ``data_root``."""
    from ..data import load_cifar10, load_mnist, load_stl10

    loaders = {"mnist": load_mnist, "cifar10": load_cifar10, "stl10": load_stl10}
    if dataset not in loaders:
        raise ValueError(f"unknown image dataset {dataset!r}; choose one of {sorted(loaders)}")
    return loaders[dataset](data_root, split=split)


def _shape(dataset: str) -> dict[str, int]:
    return {"mnist": {"channels": 1, "image_size": 28}, "stl10": {"channels": 3, "image_size": 48}}.get(
        dataset, {"channels": 3, "image_size": 32})


def train_image_gan(dataset: str, data_root: str | Path, out_dir: str | Path, pair: str = "sndcgan",
                    z_dim: int = 32, width: int = 16, progress: bool = True, device: str | None = None,
                    **settings: Any) -> Path:
    """Train a GAN pair from :data:`GAN_PAIRS`; returns the checkpoint path (``out_dir/checkpoint.pt``)."""
    if pair not in GAN_PAIRS:
        raise ValueError(f"unknown GAN {pair!r}; choose one of {sorted(GAN_PAIRS)}")
    g_arch, d_arch, conditional = GAN_PAIRS[pair]
    settings = {**PAIR_DEFAULTS.get(pair, {}), **settings}
    images, labels = load_images(dataset, data_root)
    g_cfg = {**_shape(dataset), "z_dim": z_dim, "width": width}
    d_cfg = {**_shape(dataset), "width": width}
    torch.manual_seed(settings.get("seed", 0))
    dev = rank_device(device)
    generator, discriminator = build_model(g_arch, **g_cfg).to(dev), build_model(d_arch, **d_cfg).to(dev)
    train_gan(generator, discriminator, images, z_dim, GANTraining(**settings), out_dir,
              labels=labels if conditional else None,
              models_meta={"generator": (g_arch, g_cfg), "discriminator": (d_arch, d_cfg)}, progress=progress)
    return Path(out_dir) / "checkpoint.pt"


def train_vae(dataset: str, data_root: str | Path, out_dir: str | Path, z_dim: int = 32, width: int = 16,
              iterations: int = 2000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
              progress: bool = True, device: str | None = None,
              save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> Path:
    """Train the conv VAE on the negative ELBO; its decoder is the generator ``g(z)``, ``z ~ N(0, I)``.

    ``out_dir/checkpoint.pt`` is written every ``save_every_seconds``, on SIGINT / SIGTERM and at the end;
    an existing one is resumed (a larger ``iterations`` continues a finished run)."""
    images, _ = load_images(dataset, data_root)
    cfg = {**_shape(dataset), "z_dim": z_dim, "width": width}
    torch.manual_seed(seed)
    dev = rank_device(device)
    vae = build_model("conv_vae", **cfg).to(dev).train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    out = Path(out_dir) / "checkpoint.pt"
    ck = Resumable(out, {"generator": ("conv_vae", cfg)}, {"training": "vae", "z_dim": z_dim},
                   every_seconds=save_every_seconds)
    start, log = ck.start({"generator": vae}, {"opt": opt}, {"rng": rng}, iterations, progress)
    with ck:
        for it in tqdm(range(start + 1, iterations + 1), initial=start, total=iterations, desc="VAE",
                       disable=None if progress else True):
            loss = vae.loss(images[torch.randint(len(images), (batch_size,), generator=rng)].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it % 100 == 0 or it == iterations:
                log.append({"iteration": it, "neg_elbo": loss.item()})
            ck.step(it, final=it == iterations)
    vae.eval()
    ck.meta["log"] = log
    ck.save(ck.iteration)
    return out


def train_flow(dataset: str, data_root: str | Path, out_dir: str | Path, width: int = 32, levels: int = 2,
               couplings: int = 4, iterations: int = 2000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
               progress: bool = True, device: str | None = None, arch: str = "realnvp",
               temperature: float | None = None, save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> Path:
    """Train a flow (``arch``: RealNVP, or Glow with ``couplings`` steps of flow per scale) by maximum
    likelihood on dequantised images (loss: bits per dimension). ``temperature`` (Glow only) is recorded for
    sampling: the generator direction becomes ``flow(T z)``; training does not depend on it.

    Its generator direction ``x = flow(z)``, ``z ~ N(0, I)`` of the image's shape, is the model to refine
    (through a corrector: a flow has no discriminator). ``out_dir/checkpoint.pt`` is written every
    ``save_every_seconds``, on SIGINT / SIGTERM and at the end; an existing one is resumed.
    """
    from ..zoo.flow import bits_per_dim, dequantize

    if arch not in FLOW_ARCHS:
        raise ValueError(f"unknown flow {arch!r}; choose one of {sorted(FLOW_ARCHS)}")
    images, _ = load_images(dataset, data_root)
    test, _ = load_images(dataset, data_root, "test")
    cfg = {**_shape(dataset), "width": width, "levels": levels, "couplings": couplings}
    if temperature is not None:
        if arch != "glow":
            raise ValueError("temperature is a Glow option (--arch glow)")
        cfg["temperature"] = temperature
    torch.manual_seed(seed)
    dev = rank_device(device)
    flow = build_model(arch, **cfg).to(dev).train()
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    dims = images[0].numel()
    out = Path(out_dir) / "checkpoint.pt"
    ck = Resumable(out, {"generator": (arch, cfg)}, {"training": "flow"}, every_seconds=save_every_seconds)
    start, log = ck.start({"generator": flow}, {"opt": opt}, {"rng": rng}, iterations, progress)
    begin = time.perf_counter()
    with ck:
        bar = tqdm(range(start + 1, iterations + 1), initial=start, total=iterations, desc="flow",
                   disable=None if progress else True)
        for it in bar:
            x = dequantize(images[torch.randint(len(images), (batch_size,), generator=rng)], rng).to(dev)
            loss = bits_per_dim(flow.log_prob(x), dims).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 100.0)
            opt.step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"flow training diverged at iteration {it}; lower lr (now {lr})")
            if it % 100 == 0 or it == iterations:
                log.append({"iteration": it, "bits_per_dim": loss.item()})
                bar.set_postfix(bpd=f"{loss.item():.3f}")
            ck.step(it, final=it == iterations)
    flow.eval()
    with torch.no_grad():
        held = dequantize(test[:1000], torch.Generator().manual_seed(seed + 1)).to(dev)
        test_bpd = float(bits_per_dim(flow.log_prob(held), dims).mean())
    ck.meta.update(test_bits_per_dim=test_bpd, log=log, seconds=round(time.perf_counter() - begin, 1))
    ck.save(ck.iteration)
    return out


def train_classifier(dataset: str, data_root: str | Path, out_dir: str | Path, width: int = 32, epochs: int = 2,
                     batch_size: int = 128, lr: float = 1e-3, seed: int = 0, progress: bool = True,
                     device: str | None = None) -> Path:
    """Train the metrics classifier (cross-entropy); records its test accuracy in the checkpoint."""
    images, labels = load_images(dataset, data_root)
    test_x, test_y = load_images(dataset, data_root, "test")
    cfg = {**_shape(dataset), "width": width}
    torch.manual_seed(seed)
    dev = rank_device(device)
    model = build_model("classifier", **cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=rng)
        for idx in tqdm(order.split(batch_size), desc="classifier", disable=None if progress else True):
            loss = F.cross_entropy(model(images[idx].to(dev)), labels[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x.to(dev)).argmax(1).cpu() == y).sum()) for x, y in zip(test_x.split(500),
                                                                                      test_y.split(500)))
    accuracy = correct / len(test_x)
    out = Path(out_dir) / "checkpoint.pt"
    save_checkpoint(out, {"classifier": ("classifier", cfg, model.cpu())},
                    {"test_accuracy": accuracy, "epochs": epochs, "seconds": round(time.perf_counter() - start, 1)})
    return out


def train_image_corrector(gan_path: str | Path, target_path: str | Path, out_dir: str | Path,
                          iterations: int = 1000, batch_size: int = 64, lr: float = 1e-4, seed: int = 0,
                          progress: bool = True, device: str | None = None,
                          save_every_seconds: float | None = SAVE_EVERY_SECONDS) -> Path:
    """Fine-tune a copy of the GAN's discriminator to tell the GAN's samples (1) from the target's (0).
    ``out_dir/checkpoint.pt`` is written every ``save_every_seconds``, on SIGINT / SIGTERM and at the end;
    an existing one is resumed.

    Refine the target with ``disc_path: <gan>`` and ``corr_path: <this checkpoint>``.
    """
    dev = rank_device(device)
    gan, _ = load_checkpoint(gan_path, map_location=dev)
    target, _ = load_checkpoint(target_path, map_location=dev)
    g_phi, d_phi, g_theta = gan["generator"], gan["discriminator"], target["generator"]

    rng = torch.Generator().manual_seed(seed)

    def sampler(g):
        shape = latent_shape(g)
        return lambda n: g(torch.randn(n, *shape, generator=rng).to(dev))

    ck_d = io.load_checkpoint_file(gan_path)["models"]["discriminator"]
    out = Path(out_dir) / "checkpoint.pt"
    ck = Resumable(out, {"corrector": (ck_d["arch"], ck_d["config"])}, {"gan": str(gan_path), "target": str(target_path)},
                   every_seconds=save_every_seconds, rngs={"rng": rng})
    corrector, log = train_corrector(d_phi, sampler(g_phi), sampler(g_theta), iterations=iterations,
                                     batch_size=batch_size, lr=lr, progress=progress, checkpoint=ck)
    ck.meta["log"] = log
    ck.save(ck.iteration)
    io.write_json(Path(out_dir) / "corrector_log.json", log)
    return out
