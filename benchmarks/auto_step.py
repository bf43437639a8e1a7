"""Automatic step size and number of steps vs the published defaults and the best hand-tuned setting.

For each model: the base samples, DGflow (KL, gamma 0.01) with the published defaults (eta 0.1,
25 steps), the best setting of a sweep over eta x steps (the metric at every 5th step of each eta,
so "best" is an oracle that has seen the metric), and ``eta="auto", steps="auto"`` with and without
held-out real samples. The same latents (seed 0) for every row.

    python benchmarks/auto_step.py --models toy sndcgan ns vae oc --out runs/auto-bench   # one JSON per model
    python benchmarks/auto_step.py --out runs/auto-bench --table                            # the table only

Models: ``toy`` the shipped 2-D WGAN-GP (25 Gaussians, self-normalised critic; % high quality,
higher is better); MNIST (classifier FID of 128-d features against the 10,000 test images,
lower is better): ``sndcgan`` the hinge SN-DCGAN, ``ns`` a non-saturating GAN, ``vae`` the VAE
through the SN-DCGAN discriminator + corrector, ``oc`` the non-saturating generator with an
over-confident discriminator (trained on alone, far past convergence). Held-out real samples
for "auto": 1,000 test images not ... (``--heldout``), or 1,000 fresh 2-D points.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ETAS = [0.01, 0.03, 0.1, 0.3]


def load(model: str, args: argparse.Namespace):
    """(generator, discriminator, corrector, latent_shape, metric(x) -> float, higher_is_better, heldout)."""
    if model == "toy":
        from dgflow.experiments.toy2d import load_models
        from dgflow.metrics import high_quality_fraction
        from dgflow.data.toy import MODES_25G, STD_25G, sample_toy
        from dgflow.zoo.toy import Z_DIM

        g, critic, _ = load_models("25gaussians")
        return (g, critic, None, (Z_DIM,), lambda x: 100 * high_quality_fraction(x, MODES_25G, STD_25G), True,
                sample_toy("25gaussians", args.heldout, seed=40_000))
    from dgflow.data import load_mnist
    from dgflow.metrics import ClassifierFeatures, compute_stats, fid_from_stats
    from dgflow.zoo import load_checkpoint

    root = Path(args.models_root)
    files = {"sndcgan": ("sndcgan", "sndcgan", None), "ns": (args.ns, args.ns, None),
             "vae": ("vae", "sndcgan", "vae-corrector"), "oc": (args.ns, args.oc, None)}
    gen_file, disc_file, corr_file = (None if f is None else Path(f) if Path(f).is_absolute()
                                      else root / f / "checkpoint.pt" for f in files[model])
    g = load_checkpoint(gen_file)[0]["generator"]
    d = load_checkpoint(disc_file)[0]["discriminator"]
    c = load_checkpoint(corr_file)[0]["corrector"] if corr_file else None
    clf = ClassifierFeatures(load_checkpoint(root / "classifier" / "checkpoint.pt")[0]["classifier"])
    test, _ = load_mnist(args.data, split="test")
    with torch.no_grad():
        ref = compute_stats(torch.cat([clf(t) for t in test.split(1000)]))

    def fid(x: torch.Tensor) -> float:
        with torch.no_grad():
            return fid_from_stats(*compute_stats(torch.cat([clf(t) for t in x.split(1000)])), *ref)

    heldout = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(40_000))[:args.heldout]]
    return g, d, c, (g.z_dim,), fid, False, heldout


def bench(model: str, args: argparse.Namespace) -> dict:
    from dgflow import generate, refine

    g, d, c, shape, metric, higher, heldout = load(model, args)
    common = dict(n=args.n, latent_shape=shape, corrector=c, seed=0, batch_size=args.n, progress=False)
    out = {"model": model, "n": args.n, "higher_is_better": higher, "sweep": {}, "auto": {}}
    out["base"] = metric(generate(g, args.n, latent_shape=shape, seed=0)[1])
    print(f"{model}: base {out['base']:.2f}", flush=True)
    for eta in ETAS:
        start = time.perf_counter()
        res = refine(g, d, eta=eta, gamma=0.01, steps=args.steps, save_interval=5, **common)
        out["sweep"][eta] = {"steps": res.steps, "metric": [metric(x) for x in res.x_history],
                             "mean_logit": res.logit_history.mean(1).tolist(), "seconds": time.perf_counter() - start}
        print(f"  eta {eta}: " + " ".join(f"{s}:{m:.1f}" for s, m in zip(res.steps, out["sweep"][eta]["metric"])),
              flush=True)
    for label, held in (("auto", heldout), ("auto, no held-out", None)):
        start = time.perf_counter()
        res = refine(g, d, eta="auto", gamma=0.01, steps="auto", heldout=held, save_interval=None, **common)
        a = res.info["auto"]
        out["auto"][label] = {"metric": metric(res.x), "chosen": a["chosen"], "reason": a["reason"],
                              "level": a["level"], "seconds": time.perf_counter() - start, "info": a}
        print(f"  {label}: {out['auto'][label]['metric']:.2f}  ({a['reason']})", flush=True)
    return out


def table(results: list[dict]) -> str:
    lines = ["| model | metric | base | defaults (eta 0.1, 25 steps) | best of sweep (eta, steps) | auto (eta, steps) "
             "| auto without held-out (eta, steps) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        higher = r["higher_is_better"]
        pick = max if higher else min
        sweep = {(float(eta), s): m for eta, rec in r["sweep"].items() for s, m in zip(rec["steps"], rec["metric"])}
        best = pick(sweep, key=sweep.get)
        default = sweep.get((0.1, 25))
        name = "% high quality (higher better)" if higher else "classifier FID (lower better)"

        def fmt_auto(label: str) -> str:
            a = r["auto"].get(label)
            return "–" if a is None else f"{a['metric']:.1f} ({a['chosen']['eta']:g}, {a['chosen']['steps']})"

        lines.append(f"| {r['model']} | {name} | {r['base']:.1f} | {default:.1f} | {sweep[best]:.1f} "
                     f"({best[0]:g}, {best[1]}) | {fmt_auto('auto')} | {fmt_auto('auto, no held-out')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=[], choices=["toy", "sndcgan", "ns", "vae", "oc"])
    parser.add_argument("--out", required=True, help="folder for one JSON per model (existing ones are reused)")
    parser.add_argument("--table", action="store_true", help="print the table of every JSON in --out")
    parser.add_argument("--models-root", default="runs/mnist",
                        help="folder with classifier/, sndcgan/, vae/, vae-corrector/ (default: %(default)s)")
    parser.add_argument("--ns", default="ns", help="non-saturating GAN: folder name under --models-root or a path")
    parser.add_argument("--oc", default="oc", help="over-confident discriminator checkpoint (role 'discriminator')")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--n", type=int, default=500, help="samples per setting (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=40, help="sweep length; metric every 5 steps (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=1000, help="held-out real samples for auto (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    for model in args.models:
        path = out / f"{model}.json"
        if not path.exists():
            from dgflow import io

            io.write_json(path, bench(model, args))
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if results:
        print(table(results))


if __name__ == "__main__":
    main()
