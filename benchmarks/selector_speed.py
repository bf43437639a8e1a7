#!/usr/bin/env python
"""CPU time of the selectors (MH-GAN, DRS) on the 2-D demo setting, blocked vs per-step.

Setting (as ``dgflow demo`` calls ``select``): the shipped 25-Gaussians WGAN-GP (G 2-256-256-256-2,
D 2-512-512-512-1, critic self-normalised), 2,000 chains x 640 proposals, ``batch_size=2000``,
1,000 held-out real points for MH-GAN (half calibrate D with isotonic regression, half start chains).

Rows:
  MH-GAN per-step   the loop dgflow used before: one ``(z, G(z), D(G(z)))`` draw of every chain per MH
                    step, the chains' states (z, x, d) updated in place; with the restart fix (a chain
                    that never left its real start is rerun on its proposals with fresh uniforms)
  MH-GAN blocked    ``dgflow.select(method="mhgan")``: every proposal's logit first, ``batch_size``
                    proposals per network call, the chains run on the logits, the selected samples
                    generated again
  DRS               ``dgflow.select(method="drs")`` (gamma from the burn-in logits)
  DRS per-chain     ``dgflow.select(method="drs", gamma_per_chain=True)`` (the authors' rule)
The blocked MH-GAN must return exactly the per-step loop's samples, latents and logits (checked).
``floor`` = the networks alone: G and D forward on every proposal in batches of ``batch_size``.

    OMP_NUM_THREADS=1 python benchmarks/selector_speed.py                   # full run (~2 min CPU)
    OMP_NUM_THREADS=1 python benchmarks/selector_speed.py --steps 64        # quick run
    python benchmarks/selector_speed.py --json benchmarks/results/selectors_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def mhgan_per_step(proposals, n: int, chain_length: int, calibration: str = "isotonic"):
    """The per-step MH-GAN loop (as before the blocked version), with fresh uniforms for reruns."""
    from dgflow.selectors import MHGAN

    real = proposals.real
    half = len(real) // 2
    calibrate = MHGAN(chain_length=chain_length, calibration=calibration).fit_calibration(proposals, real[:half])
    real_init = real[half:]
    chains = torch.arange(n)
    pick = (proposals.uniform(chains, "mhgan-init") * len(real_init)).long()
    d_a = calibrate(proposals.logit(real_init[pick]))
    z_a = x_a = None  # the real starts are never output: a chain that stays there is rerun
    moved = torch.zeros(n, dtype=torch.bool)
    for k in range(chain_length):
        z_p, x_p, raw = proposals.draw(chains, "mhgan", step=k)
        d_p = calibrate(raw)
        if k == 0:  # the rerun (chain B) starts at the first proposal
            z_a, x_a, z_b, x_b, d_b = z_p.clone(), x_p.clone(), z_p.clone(), x_p.clone(), d_p.clone()
        else:
            log_u_b = torch.log(proposals.uniform(chains, "mhgan-restart-accept", step=k))
            acc_b = log_u_b <= d_p - d_b
            z_b[acc_b], x_b[acc_b], d_b[acc_b] = z_p[acc_b], x_p[acc_b], d_p[acc_b]
        acc_a = torch.log(proposals.uniform(chains, "mhgan-accept", step=k)) <= d_p - d_a
        moved |= acc_a
        z_a[acc_a], x_a[acc_a], d_a[acc_a] = z_p[acc_a], x_p[acc_a], d_p[acc_a]
    keep = moved[:, None]
    return torch.where(keep, z_a, z_b), torch.where(keep, x_a, x_b), torch.where(moved, d_a, d_b).float()


def network_floor(target, n: int, steps: int, batch_size: int) -> float:
    """CPU seconds of G and D forward on ``n * steps`` latents in batches of ``batch_size``."""
    z = torch.randn(batch_size, *target.prior.shape)
    calls = -(-n * steps // batch_size)
    with torch.no_grad():
        target.logit(z)
        start = time.process_time()
        for _ in range(calls):
            target.discriminate(target.sample(z))
        return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=640, help="MH-GAN chain length / DRS proposals per chain")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import dgflow
    from dgflow.experiments.toy2d import Z_DIM, load_models
    from dgflow.priors import make_prior
    from dgflow.ratio import DensityRatio
    from dgflow.selectors import Proposals
    from dgflow.target import Target, eval_mode
    from dgflow.data.toy import sample_toy

    generator, critic, _ = load_models("25gaussians", seed=args.seed)
    real = sample_toy("25gaussians", 1000, seed=20_000 + args.seed)  # as the demo's calibration_real
    n, steps, batch = args.chains, args.steps, args.batch
    common = dict(latent_shape=(Z_DIM,), seed=args.seed, batch_size=batch, progress=False)
    target = Target(generator, DensityRatio(critic), make_prior("normal", (Z_DIM,)))

    def timed(fn):
        start = time.process_time()
        out = fn()
        return out, time.process_time() - start

    rows = []
    with eval_mode(generator, critic):
        reference, t_ref = timed(lambda: mhgan_per_step(Proposals(target, args.seed, batch, torch.device("cpu"), real),
                                                       n, steps))
    res, t_mh = timed(lambda: dgflow.select(generator, critic, n, method="mhgan", real=real, chain_length=steps,
                                            **common))
    identical = all(torch.equal(a, b) for a, b in zip(reference, (res.z, res.x, res.logits)))
    floor = network_floor(target, n, steps, batch)
    rows.append(("MH-GAN per-step (fixed)", n * steps, t_ref, "-"))
    rows.append(("MH-GAN blocked", n * steps, t_mh, "yes" if identical else "NO"))
    drs, t_drs = timed(lambda: dgflow.select(generator, critic, n, method="drs", **common))
    rows.append(("DRS (burn-in gamma)", drs.n_proposals + 10_000, t_drs, "-"))
    drs_c, t_drs_c = timed(lambda: dgflow.select(generator, critic, n, method="drs", gamma_per_chain=True,
                                                 chain_length=steps, **common))
    rows.append(("DRS per-chain (authors')", drs_c.n_proposals + 10_000, t_drs_c, "-"))

    load = os.getloadavg()[0]
    header = (f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
              f"{n} chains x {steps} proposals, batch {batch}, 1-min load average {load:.2f}; CPU time "
              "(time.process_time)")
    lines = [header, f"# network floor (G + D forward on {n * steps} proposals): {floor:.2f} s",
             f"# MH-GAN blocked vs per-step: {t_ref / t_mh:.2f}x; restarted chains {res.info['restarted_chains']}, "
             f"acceptance {res.acceptance_rate:.4f}",
             "", "| selector | proposals evaluated | CPU s | floor % | identical to per-step |",
             "|---|---:|---:|---:|---|"]
    for name, count, seconds, same in rows:
        pct = f"{100 * floor * count / (n * steps) / seconds:.0f}"
        lines.append(f"| {name} | {count} | {seconds:.2f} | {pct} | {same} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "floor_s": floor, "rows": [
            dict(zip(("selector", "proposals", "cpu_s", "identical"), r)) for r in rows]}, indent=1) + "\n")
    if not identical:
        raise SystemExit("the blocked MH-GAN differs from the per-step loop")


if __name__ == "__main__":
    main()
