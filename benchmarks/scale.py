#!/usr/bin/env python
"""Throughput and peak memory of DGflow refinement: ``dgflow.refine`` vs a plain loop of the same
update, each speed option on and off, 1 and 2 processes, against the physical floor; and the
selectors (MH-GAN, DRS) through ``dgflow.select``, 1 and 2 processes, against their floor.

Models (eval mode):
  mlp-2d          the shipped 2-D MLPs (25 Gaussians; G 2-256-256-256-2, D 2-512-512-512-1)
  mlp-gan         the MNIST-sized MLP GAN of issue 15 (benchmarks/refine_overhead.py's: 100-d latent,
                  G 100-256-784, D 784-256-1), randomly initialised
  mnist-sndcgan   the trained MNIST SN-DCGAN (runs/mnist/sndcgan/checkpoint.pt, or --mnist)
  cifar-resnet    the CIFAR-10 ResNet SN-GAN of Miyato et al. (G width 256, D width 128, 3x32x32),
                  randomly initialised: the cost of a step does not depend on the weights

Implementations, on the same latents and batches:
  plain    for each batch, S times: z = z + eta * grad_z D(G(z)) + sqrt(2 gamma eta) randn; then the
           outputs refine returns, x = G(z) and d(x) (benchmarks/refine_overhead.py's loop skips d(x))
  refine   dgflow.refine(G, D, z, method="dgflow", f="KL", save_interval=S, keep_samples=False)
Options (the plain loop gets the same ones where they apply): none, bf16 (autocast), compile
(torch.compile, inductor), channels_last (conv models), microbatch (max_batch_size = batch / 4),
bf16+channels_last (both).
Processes: 1, or 2 started by torchrun (gloo); each rank takes every second batch
(dgflow.distributed.shard) and the time is the slowest rank's. Every row runs in fresh processes
(``--_worker``), with --threads threads per process.

Selectors (mlp-2d and mlp-gan; no speed options), timed around one ``dgflow.select(..., shard=True)``:
  mhgan      method="mhgan", chain_length K, real data: 1,000 points of the 25 Gaussians (mlp-2d, as
             ``dgflow demo``'s calibration_real) or, for the random-weight mlp-gan, 1,000 samples of the
             generator itself standing in for real data (half calibrate, half start the chains)
  drs        method="drs" (gamma from the burn-in): sequential in its proposals, so 1 process only
  drs-chain  method="drs", gamma_per_chain=True, chain_length K (the authors' rule: a chain per sample)
With 2 processes each rank evaluates every second chain (MH-GAN, DRS per chain); the burn-in and the
calibration run on every rank. The selection (latents, samples, logits) must be bit-identical to the
1-process one ("same as 1 proc"). Selector floor: G forward + D forward (no grad) per proposal,
measured on one batch in the 1-process worker (best of 3), times the proposals evaluated (chain
proposals divided by the process count, plus burn-in / calibration proposals).

Physical floor: S x (batches) x [one G forward + one D forward + one backward to z] on one batch,
float32, eager, measured in the 1-process worker (best of 3); "floor %" = floor / time, so 100%
means the step costs exactly the networks and nothing else (reduced precision can beat it).

Peak memory: the peak RSS of the process during the timed run minus the RSS before it (Linux
VmHWM, reset through /proc/self/clear_refs; see refine_overhead.py), the largest over ranks; on
CUDA torch.cuda.max_memory_allocated() minus the allocation before the run.

    python benchmarks/scale.py --quick --clock cpu       # smoke run: mlp-gan, tiny, option none, 8 launches
    python benchmarks/scale.py --clock cpu                             # on a shared machine
    python benchmarks/scale.py --models mlp-2d mnist-sndcgan --json scale.json
    python benchmarks/scale.py --clock cpu --models mlp-2d mlp-gan --impls mhgan drs drs-chain   # selectors
    python benchmarks/scale.py --device cuda --models cifar-resnet --n 50000 --batch 500 --steps 25
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ETA, GAMMA = 0.1, 0.01
MNIST = "runs/mnist/sndcgan/checkpoint.pt"
# model: (N, batch, steps) on the CPU by default
SIZES = {"mlp-2d": (10_000, 1000, 10), "mlp-gan": (5000, 500, 25), "mnist-sndcgan": (2000, 500, 5),
         "cifar-resnet": (64, 32, 2)}
QUICK_SIZES = {"mlp-2d": (400, 100, 2), "mlp-gan": (400, 100, 2), "mnist-sndcgan": (64, 32, 1),
               "cifar-resnet": (8, 4, 1)}
OPTIONS = ("none", "bf16", "compile", "channels_last", "microbatch", "bf16+channels_last")
REFINE_IMPLS = ("plain", "refine")
# selector: dgflow.select options (K = chain length, B = DRS burn-in)
SELECTORS = {"mhgan": lambda k, b: dict(method="mhgan", chain_length=k),
             "drs": lambda k, b: dict(method="drs", burn_in=b),
             "drs-chain": lambda k, b: dict(method="drs", gamma_per_chain=True, chain_length=k, burn_in=b)}
SHARDED = ("mhgan", "drs-chain")  # independent chains: split over the ranks
# model: (chains, proposals per chain K, batch, DRS burn-in, real points for MH-GAN)
SELECT_SIZES = {"mlp-2d": (1000, 640, 2000, 10_000, 1000), "mlp-gan": (200, 640, 500, 10_000, 1000)}
QUICK_SELECT_SIZES = {"mlp-2d": (32, 16, 64, 200, 100), "mlp-gan": (32, 16, 64, 200, 100)}
QUICK_MULTI = ("refine", "mhgan")  # --quick starts torchrun (~6 CPU s a launch) for these only


def build(model: str, device: torch.device, mnist: str):
    from dgflow.zoo import build_model, load_checkpoint

    torch.manual_seed(0)
    if model == "mlp-2d":
        from dgflow.zoo.toy import load_toy

        g, d, _ = load_toy("25gaussians")
        z_dim = 2
    elif model == "mlp-gan":  # the one definition: benchmarks/refine_overhead.py (seeds torch itself)
        sys.path.insert(0, str(HERE))
        from refine_overhead import build_models

        return build_models("mlp-gan", device)
    elif model == "mnist-sndcgan":
        models, _ = load_checkpoint(mnist)
        g, d = models["generator"], models["discriminator"]
        z_dim = g.z_dim
    elif model == "cifar-resnet":
        g = build_model("resnet_generator", channels=3, image_size=32, z_dim=128, width=256)
        d = build_model("resnet_discriminator", channels=3, image_size=32, width=128)
        z_dim = 128
    else:
        raise ValueError(f"unknown model {model!r}")
    return g.to(device).eval(), d.to(device).eval(), z_dim


def speed_of(option: str, batch: int) -> dict:
    return {"none": {}, "bf16": {"autocast": "bf16"}, "compile": {"compile": True},
            "channels_last": {"channels_last": True}, "microbatch": {"max_batch_size": max(1, batch // 4)},
            "bf16+channels_last": {"autocast": "bf16", "channels_last": True}}[option]


def plain_loop(g, d, z, steps, batch, device, speed):
    """The same update by hand, with the same speed options applied the obvious way."""
    from dgflow.speed import Detached

    dtype = {"bf16": torch.bfloat16, None: None}[speed.get("autocast")]
    if speed.get("channels_last"):
        g.to(memory_format=torch.channels_last)
        d.to(memory_format=torch.channels_last)
    if speed.get("compile"):  # cached on the function object: one compilation per worker
        plain_loop.cache = getattr(plain_loop, "cache", None) or (torch.compile(Detached(g)), torch.compile(Detached(d)))
        g, d = plain_loop.cache
    micro = speed.get("max_batch_size") or batch
    c = math.sqrt(2 * GAMMA * ETA)
    out = []
    for zb in z.split(batch):
        zb = zb.to(device)
        for _ in range(steps):
            grads = []
            for zc in zb.split(micro):
                zc = zc.detach().requires_grad_()
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logit = d(g(zc)).float()
                grads.append(torch.autograd.grad(logit.sum(), zc)[0])
            zb = zb + ETA * torch.cat(grads) + c * torch.randn_like(zb)
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for zc in zb.split(micro):  # the outputs refine returns: final samples and their logits
                x = g(zc)
                out.append((x.float().cpu(), d(x).float().cpu()))
    return torch.cat([x for x, _ in out])


def library(g, d, z, steps, batch, device, speed):
    import dgflow

    return dgflow.refine(g, d, z, method="dgflow", f="KL", eta=ETA, gamma=GAMMA, steps=steps, batch_size=batch,
                         device=device, progress=False, save_interval=steps, keep_samples=False, speed=speed).x


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def floor_per_batch(g, d, z, device, clock=time.perf_counter, repeats: int = 3) -> float:
    """One G forward + one D forward + one backward to z, on one batch (float32, eager, weights frozen)."""
    best = math.inf
    flags = [(p, p.requires_grad) for m in (g, d) for p in m.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    for _ in range(repeats + 1):
        zz = z.to(device).detach().requires_grad_()
        sync(device)
        t0 = clock()
        torch.autograd.grad(d(g(zz)).sum(), zz)
        sync(device)
        best = min(best, clock() - t0)
    for p, flag in flags:
        p.requires_grad_(flag)
    return best


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        return None
    return None


def worker(cfg: dict) -> None:
    from dgflow import distributed

    torch.set_num_threads(cfg["threads"])
    ctx = distributed.init(cfg["device"])
    device = ctx.device
    g, d, z_dim = build(cfg["model"], device, cfg["mnist"])
    if cfg["impl"] in SELECTORS:
        select_worker(cfg, ctx, g, d, z_dim)
        distributed.finalize(ctx)
        return
    n, batch, steps = cfg["n"], cfg["batch"], cfg["steps"]
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(1))
    speed = speed_of(cfg["option"], batch)
    fn = plain_loop if cfg["impl"] == "plain" else library
    mine = distributed.shard(list(z.split(batch)), ctx.rank, ctx.world_size)
    floor = None
    if ctx.world_size == 1:
        floor = floor_per_batch(g, d, z[:batch], device, CLOCKS[cfg["clock"]]) * steps * len(mine)
    fn(g, d, mine[0], 1, batch, device, speed)  # warm-up (and compilation) on a full batch
    distributed.barrier()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    rss0 = _status_mib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    for zb in mine:
        fn(g, d, zb, steps, batch, device, speed)
    sync(device)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        hwm = _status_mib("VmHWM")
        peak = None if hwm is None or rss0 is None else hwm - rss0
    results = distributed.gather((elapsed, cpu, peak))
    if ctx.is_main:
        peaks = [p for *_, p in results if p is not None]
        print(json.dumps({"wall": max(r[0] for r in results), "cpu": max(r[1] for r in results),
                          "peak_mib": max(peaks) if peaks else None, "floor": floor, "ranks": len(results)}))
    distributed.finalize(ctx)


def real_points(model: str, g, z_dim: int, count: int, device) -> torch.Tensor:
    """MH-GAN's held-out "real" data: 25-Gaussians points (mlp-2d, as ``dgflow demo``'s
    calibration_real), or samples of the random-weight generator itself (mlp-gan)."""
    if model == "mlp-2d":
        from dgflow.data.toy import sample_toy

        return sample_toy("25gaussians", count, seed=20_000)
    with torch.no_grad():
        return g(torch.randn(count, z_dim, generator=torch.Generator().manual_seed(2)).to(device)).cpu()


def proposal_floor(g, d, z_dim: int, batch: int, device, clock, repeats: int = 3) -> float:
    """Seconds per proposal of the networks alone: G forward + D forward (no grad) on one batch / batch."""
    z = torch.randn(batch, z_dim).to(device)
    best = math.inf
    with torch.no_grad():
        for _ in range(repeats + 1):
            sync(device)
            t0 = clock()
            d(g(z))
            sync(device)
            best = min(best, clock() - t0)
    return best / batch


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def select_worker(cfg: dict, ctx, g, d, z_dim: int) -> None:
    """One ``dgflow.select(..., shard=True)`` on every rank; rank 0 prints times, counts and a digest."""
    import dgflow
    from dgflow import distributed

    impl, device, chains, length, batch = cfg["impl"], ctx.device, cfg["n"], cfg["steps"], cfg["batch"]
    real = real_points(cfg["model"], g, z_dim, cfg["real"], device) if impl == "mhgan" else None

    def run(n: int, k: int, burn_in: int):
        return dgflow.select(g, d, n, latent_shape=(z_dim,), real=real, batch_size=batch, device=device, seed=0,
                             progress=False, shard=True, **SELECTORS[impl](k, burn_in))

    floor = None
    if ctx.world_size == 1:
        floor = proposal_floor(g, d, z_dim, batch, device, CLOCKS[cfg["clock"]])
    run(min(chains, 8), 4, 64)  # warm-up (lazy imports: sklearn for the calibration)
    distributed.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    res = run(chains, length, cfg["burn_in"])
    sync(device)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if impl == "drs":  # burn-in and proposals, all on every rank
        sharded, alone = 0, cfg["burn_in"] + res.n_proposals
    else:  # chains x K split over the ranks; calibration fakes (MH-GAN) or burn-in (DRS) on every rank
        sharded, alone = res.n_proposals, len(real) // 2 if impl == "mhgan" else cfg["burn_in"]
    results = distributed.gather((elapsed, cpu, digest(res.z, res.x, res.logits)))
    if ctx.is_main:
        print(json.dumps({"wall": max(r[0] for r in results), "cpu": max(r[1] for r in results),
                          "digest": results[0][2], "ranks_agree": len({r[2] for r in results}) == 1,
                          "floor_per_proposal": floor, "sharded": sharded, "alone": alone,
                          "acceptance": res.acceptance_rate, "ranks": len(results),
                          "chain_ranks": res.info.get("ranks", 1)}))


def launch(cfg: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"]), "MALLOC_MMAP_THRESHOLD_": "131072",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    script = [str(HERE / "scale.py"), "--_worker", json.dumps(cfg)]
    if cfg["nproc"] == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg['nproc']}", *script]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {cfg}:\n{proc.stderr[-4000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def markdown(head: list[str], lines: list[list[str]]) -> None:
    """refine_overhead.py's table printer (one definition)."""
    from refine_overhead import markdown as print_markdown

    print_markdown(head, lines)


def print_table(rows: list[dict], clock: str) -> None:
    if not rows:
        return
    floors = {r["model"]: r["floor"] for r in rows if r["floor"] is not None and r["option"] == "none"}
    base = {(r["model"], r["nproc"]): r["time"] for r in rows if r["impl"] == "plain" and r["option"] == "none"}
    head = ["model", "N x steps (batch)", "procs", "impl", "option", f"{clock} s", "samples*steps/s", "peak MiB",
            "vs plain", "floor %", "wall s"]
    lines = []
    for r in rows:
        plain = base.get((r["model"], r["nproc"]))
        floor = floors.get(r["model"])
        lines.append([r["model"], f"{r['n']} x {r['steps']} ({r['batch']})", str(r["nproc"]), r["impl"], r["option"],
                      f"{r['time']:.2f}", f"{r['n'] * r['steps'] / r['time']:,.0f}",
                      "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}",
                      "-" if plain is None else f"{plain / r['time']:.2f}x",
                      "-" if floor is None else f"{100 * floor / r['nproc'] / r['time']:.0f}%", f"{r['wall']:.2f}"])
    markdown(head, lines)
    print(f"\n# times: {clock} clock; floor: steps x batches x (G forward + D forward + backward to z), "
          "float32 eager, 1 process (divided by the process count for 'floor %'); "
          "'vs plain' = plain-loop time (no option, same process count) / time")
    for model, floor in floors.items():
        r = next(r for r in rows if r["model"] == model)
        per = floor / (r["steps"] * math.ceil(r["n"] / r["batch"]))
        print(f"# {model}: floor {floor:.2f} s = {per * 1e3:.1f} ms per batch of {r['batch']} per step; "
              f"50,000 samples x 25 steps at the floor: {per / r['batch'] * 50_000 * 25 / 60:.1f} min")


def print_select_table(rows: list[dict], clock: str) -> None:
    if not rows:
        return
    per = {(r["model"], r["batch"]): r["floor_per_proposal"] for r in rows if r["floor_per_proposal"] is not None}
    one = {(r["model"], r["impl"], r["n"], r["steps"]): r["digest"] for r in rows if r["nproc"] == 1}
    head = ["model", "chains x K (batch)", "procs", "selector", "proposals evaluated", f"{clock} s", "proposals/s",
            "floor %", "acceptance", "same as 1 proc", "wall s"]
    lines = []
    for r in rows:
        total = r["sharded"] + r["alone"]
        floor = per.get((r["model"], r["batch"]))
        ref = one.get((r["model"], r["impl"], r["n"], r["steps"]))
        same = "-" if r["nproc"] == 1 else "?" if ref is None else (
            "yes" if r["digest"] == ref and r["ranks_agree"] else "NO")
        if not r["ranks_agree"]:
            same = "NO (ranks differ)"
        lines.append([r["model"], f"{r['n']} x {r['steps']} ({r['batch']})", str(r["nproc"]), r["impl"],
                      f"{total:,}", f"{r['time']:.2f}", f"{total / r['time']:,.0f}",
                      "-" if floor is None else f"{100 * floor * (r['sharded'] / r['nproc'] + r['alone']) / r['time']:.0f}%",
                      f"{r['acceptance']:.3f}", same, f"{r['wall']:.2f}"])
    markdown(head, lines)
    print(f"\n# times: {clock} clock, one dgflow.select(..., shard=True) call (the busiest rank); proposals evaluated: "
          "G + D forward passes (chains x K, plus DRS's burn-in or MH-GAN's calibration fakes); floor %: "
          "networks alone (G + D forward per proposal, 1 process) on the chain proposals / procs + the rest, "
          "over the time; 'same as 1 proc': latents, samples and logits bit-identical to the 1-process selection")
    for (model, batch), floor in per.items():
        print(f"# {model}: selector floor {floor * 1e6:.2f} us per proposal (G + D forward, batch {batch})")
    multi = [line[-2] for line in lines if line[2] != "1"]
    if multi:
        print(f"# 2-process selection identical to the 1-process one: {'yes' if all(m == 'yes' for m in multi) else 'no'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=list(SIZES), help="default: all (--quick: mlp-gan)")
    p.add_argument("--impls", nargs="+", default=[*REFINE_IMPLS, *SELECTORS], choices=[*REFINE_IMPLS, *SELECTORS],
                   help="refinement (plain, refine) and selectors (mhgan, drs, drs-chain; mlp-2d and mlp-gan "
                        "only); default: all")
    p.add_argument("--options", nargs="+", choices=list(OPTIONS), help="speed options (default: all; --quick: none)")
    p.add_argument("--nproc", nargs="+", type=int, default=[1, 2])
    p.add_argument("--n", type=int, help="samples, or selector chains (default: per model, see SIZES, SELECT_SIZES)")
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, help="refinement steps, or selector chain length K")
    p.add_argument("--threads", type=int, default=1, help="threads per process (default 1, as torchrun sets)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time of the slowest rank; cpu: CPU time of the busiest rank, which "
                        "waiting for a shared core does not inflate (what each rank would take on its own core)")
    p.add_argument("--mnist", default=MNIST, help="MNIST SN-DCGAN checkpoint (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes; mlp-gan and option none unless given; 2+ processes for refine and mhgan only")
    p.add_argument("--json")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print the tables from saved --json files and exit")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._worker:
        worker(json.loads(args._worker))
        return
    if args.table:
        runs = [json.loads(Path(f).read_text()) for f in args.table]
        rows = [r for run in runs for r in run["rows"]]
        print_table([r for r in rows if r["impl"] in REFINE_IMPLS], runs[0]["meta"]["clock"])
        print_select_table([r for r in rows if r["impl"] in SELECTORS], runs[0]["meta"]["clock"])
        return
    models = args.models or (["mlp-gan"] if args.quick else list(SIZES))
    options = args.options or (["none"] if args.quick else list(OPTIONS))
    sizes, select_sizes = (QUICK_SIZES, QUICK_SELECT_SIZES) if args.quick else (SIZES, SELECT_SIZES)
    if "mnist-sndcgan" in models and not Path(args.mnist).is_file():
        p.error(f"--mnist: no MNIST SN-DCGAN checkpoint at {args.mnist}; train one (dgflow train gan --dataset "
                f"mnist --data DATA --out runs/mnist/sndcgan), pass --mnist PATH, or leave mnist-sndcgan out of "
                f"--models")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# torch {torch.__version__}, device {args.device}, {os.cpu_count()} cores, {args.threads} thread(s) per "
          f"process, 1-min load average before the run: {load:.2f}")
    rows = []

    def measure(cfg: dict, label: str) -> None:
        t0 = time.time()
        res = launch(cfg)
        res["time"] = res[args.clock]
        rows.append({**cfg, **res})
        print(f"# {label} x{cfg['nproc']}: wall {res['wall']:.2f} s, cpu {res['cpu']:.2f} s "
              f"({time.time() - t0:.0f} s with start-up)", flush=True)

    common = dict(threads=args.threads, device=args.device, mnist=str(args.mnist), clock=args.clock)
    for model in models:
        n, batch, steps = sizes[model]
        n, batch, steps = args.n or n, args.batch or batch, args.steps or steps
        for option in options:
            if "channels_last" in option and model in ("mlp-2d", "mlp-gan"):
                continue  # no convolutions
            for nproc in args.nproc:
                for impl in [i for i in args.impls if i in REFINE_IMPLS]:
                    if args.quick and nproc > 1 and impl not in QUICK_MULTI:
                        continue
                    measure(dict(model=model, impl=impl, option=option, nproc=nproc, n=n, batch=batch, steps=steps,
                                 **common), f"{model} {impl} {option}")
        selectors = [i for i in args.impls if i in SELECTORS]
        if selectors and model not in select_sizes:
            print(f"# selectors: not timed on {model} (mlp-2d and mlp-gan only)")
            continue
        for impl in selectors:
            chains, length, batch, burn_in, real = select_sizes[model]
            chains, length, batch = args.n or chains, args.steps or length, args.batch or batch
            for nproc in args.nproc:
                if nproc > 1 and impl not in SHARDED:
                    print(f"# {model} {impl} x{nproc}: skipped (DRS's default rule is sequential: one process)")
                    continue
                if args.quick and nproc > 1 and impl not in QUICK_MULTI:
                    continue
                measure(dict(model=model, impl=impl, option="none", nproc=nproc, n=chains, batch=batch, steps=length,
                             burn_in=burn_in, real=real, **common), f"{model} {impl}")
    print_table([r for r in rows if r["impl"] in REFINE_IMPLS], args.clock)
    print_select_table([r for r in rows if r["impl"] in SELECTORS], args.clock)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": {"torch": torch.__version__, "load_average": load, "threads": args.threads,
                                "device": args.device, "clock": args.clock, "quick": args.quick}, "rows": rows},
                      fh, indent=2)


if __name__ == "__main__":
    main()
