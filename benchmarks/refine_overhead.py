#!/usr/bin/env python
"""Overhead of ``dgflow.refine(method="dgflow")`` over a hand-written loop of the same update.

The plain loop, on the same networks, latents and batches::

    for n in range(S):
        z = z.detach().requires_grad_(); d = D(G(z)); g, = torch.autograd.grad(d.sum(), z)
        z = z + eta * g + sqrt(2 * gamma * eta) * torch.randn_like(z)
    x = G(z); d = D(x)                          # no grad: the final samples and logits (refine returns both)

against ``dgflow.refine(G, D, z, method="dgflow", f="KL", eta, gamma, steps=S, save_interval=S,
keep_samples=False, progress=False)`` (only the start and final states are recorded) and, as an
extra row, the defaults ``save_interval=5, keep_samples=True`` ("dgflow.refine+history").

Models: (a) the 2-D MLPs of the DGflow paper (``dgflow.zoo.mlp``: G 2-256-256-256-2,
D 2-512-512-512-1); (b) a small DCGAN-like pair defined here (32-d latent -> 1x32x32 image);
(c) the MNIST-sized MLP GAN of issue 15 (100-d latent, 784-d output, four linear layers in all:
G 100-256-784, D 784-256-1), at batch 500 and 25 steps (``--models mlp-gan``), where per-step costs
outside the networks show most.
Both are randomly initialised (throughput does not depend on the weights) and in eval mode.

Timing: all implementations of one (model, batch) run interleaved in this process, after a
warm-up; we report the best (min) and the median over ``--repeats``. Peak memory: each
configuration runs once more in a fresh subprocess (``python refine_overhead.py --_worker``):
on the CPU the peak RSS of that process during the run minus its RSS just before it (Linux:
VmHWM, reset just before the run by writing "5" to /proc/self/clear_refs, see proc(5); elsewhere
the ``ru_maxrss`` difference. Plain ``ru_maxrss`` is not used on Linux because a child started by
fork+exec inherits the parent's high-water mark; the subprocess runs with a fixed glibc
``MALLOC_MMAP_THRESHOLD_=131072`` so the RSS follows the live tensors); on CUDA
``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before the run.

    python benchmarks/refine_overhead.py                  # full run (~2-3 min on 2 idle CPU cores)
    python benchmarks/refine_overhead.py --quick          # smoke run (seconds)
    python benchmarks/refine_overhead.py --device cuda --json out.json
    python benchmarks/refine_overhead.py --profile        # + cProfile of one dgflow.refine call per config
    python benchmarks/refine_overhead.py --threads 1 --clock cpu --repeats 9 --no-memory   # on a shared machine
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import dgflow
from dgflow.zoo.mlp import MLPDiscriminator, MLPGenerator

ETA, GAMMA = 0.1, 0.01
MMAP_THRESHOLD = 128 * 1024  # glibc M_MMAP_THRESHOLD for the memory subprocesses
IMPLS = ("plain loop", "dgflow.refine", "dgflow.refine+history")


# --------------------------------------------------------------------------------------- models


class ConvGenerator(nn.Module):
    """DCGAN-like: 32-d latent -> 1x32x32 image in [-1, 1]."""

    def __init__(self, z_dim: int = 32, ch: int = 64):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 2 * ch, 4, 1, 0, bias=False), nn.BatchNorm2d(2 * ch), nn.ReLU(True),  # 4x4
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),  # 8x8
            nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True),  # 16x16
            nn.ConvTranspose2d(ch // 2, 1, 4, 2, 1), nn.Tanh(),  # 32x32
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(len(z), self.z_dim, 1, 1))


class ConvDiscriminator(nn.Module):
    """1x32x32 -> one logit per sample, shaped [B]."""

    def __init__(self, ch: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 16x16
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 8x8
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 4x4
        )
        self.head = nn.Linear(4 * ch * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))[:, 0]


class MLPGANGenerator(nn.Module):
    """100-d latent -> 784 (a flattened 28x28 image in [-1, 1])."""

    def __init__(self, z_dim: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 256), nn.ReLU(), nn.Linear(256, 784), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPGANDiscriminator(nn.Module):
    """784 -> one logit per sample, shaped [B]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


MODELS = ("mlp-2d", "conv-32x32", "mlp-gan")


def markdown(head: list[str], lines: list[list[str]]) -> None:
    """Print a markdown table with padded columns (benchmarks/scale.py prints its tables with it too)."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")


def build_models(model: str, device: torch.device):
    torch.manual_seed(0)
    if model == "mlp-2d":
        G, D, z_dim = MLPGenerator(), MLPDiscriminator(), 2
    elif model == "mlp-gan":
        G, D, z_dim = MLPGANGenerator(), MLPGANDiscriminator(), 100
    elif model == "conv-32x32":
        G, D, z_dim = ConvGenerator(), ConvDiscriminator(), 32
        with torch.no_grad():  # give BatchNorm non-trivial running statistics
            G.train()
            for _ in range(3):
                G(torch.randn(64, z_dim))
    else:
        raise ValueError(model)
    return G.to(device).eval(), D.to(device).eval(), z_dim


def make_latents(n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------- implementations


def plain_loop(G, D, z, steps, batch_size, device, eta=ETA, gamma=GAMMA):
    c = math.sqrt(2 * gamma * eta)
    zs, xs, ds = [], [], []
    for zb in z.split(batch_size):
        zb = zb.to(device)
        for _ in range(steps):
            zb = zb.detach().requires_grad_()
            d = D(G(zb))
            (g,) = torch.autograd.grad(d.sum(), zb)
            zb = zb + eta * g + c * torch.randn_like(zb)
        with torch.no_grad():
            x = G(zb)
            d = D(x)  # the final logits, which refine returns too
        ds.append(d.cpu())
        zs.append(zb.detach().cpu())
        xs.append(x.cpu())
    return torch.cat(zs), torch.cat(xs)


def library(G, D, z, steps, batch_size, device, history: bool, eta=ETA, gamma=GAMMA):
    kw = dict(save_interval=5, keep_samples=True) if history else dict(save_interval=max(steps, 1), keep_samples=False)
    r = dgflow.refine(G, D, z, method="dgflow", f="KL", eta=eta, gamma=gamma, steps=steps,
                      batch_size=batch_size, device=device, progress=False, **kw)
    return r.z, r.x


def run_impl(impl, G, D, z, steps, batch_size, device):
    if impl == "plain loop":
        return plain_loop(G, D, z, steps, batch_size, device)
    return library(G, D, z, steps, batch_size, device, history=impl.endswith("+history"))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU time of this process, all threads)


def timed(impl, G, D, z, steps, batch_size, device) -> float:
    sync(device)
    t0 = CLOCK()
    run_impl(impl, G, D, z, steps, batch_size, device)
    sync(device)
    return CLOCK() - t0


# --------------------------------------------------------------------------------------- memory


def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0, proc(5) clear_refs "5")."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def maxrss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux


def worker(cfg: dict) -> dict:
    """One configuration in a fresh process: tiny warm-up, then one measured run."""
    torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    G, D, z_dim = build_models(cfg["model"], device)
    z = make_latents(cfg["n"], z_dim)
    # warm-up both code paths on a few samples (lazy library / kernel initialisation)
    for impl in IMPLS:
        run_impl(impl, G, D, z[:8], 2, 8, device)
    gc.collect()
    sync(device)
    out = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    # Peak RSS during the run minus RSS before it. VmHWM is reset first where the kernel allows;
    # otherwise fall back on ru_maxrss, which after fork+exec starts at the *parent's* RSS and so
    # only counts if the run exceeded it.
    hwm = reset_peak_rss() and _proc_status_mib("VmHWM") is not None
    rss_before, maxrss_before = _proc_status_mib("VmRSS"), maxrss_mib()
    run_impl(cfg["impl"], G, D, z, cfg["steps"], cfg["batch"], device)
    sync(device)
    if hwm:
        out["rss_peak_mib"] = _proc_status_mib("VmHWM") - rss_before
        out["rss_method"] = "VmHWM (reset via /proc/self/clear_refs) - VmRSS before"
    else:
        maxrss_after = maxrss_mib()
        out["rss_peak_mib"] = maxrss_after - maxrss_before
        out["rss_method"] = "ru_maxrss after - ru_maxrss before (0 means: below the inherited mark)"
    out["rss_before_mib"] = rss_before
    if device.type == "cuda":
        out["cuda_peak_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return out


def measure_memory(cfg: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps(cfg)]
    # A fixed glibc mmap threshold (mallopt(3): M_MMAP_THRESHOLD; setting it also turns off the dynamic
    # threshold) makes every tensor buffer >= 128 KiB its own mapping, returned to the OS when freed, so
    # the peak RSS follows the live tensors instead of heap fragmentation (which otherwise swings the
    # 2-D N=5000 rows by ~40 MiB between implementations that allocate the same tensors).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed for {cfg}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ profiling


def profile_library(G, D, z, steps, batch_size, device, top: int = 14) -> str:
    prof = cProfile.Profile()
    prof.enable()
    library(G, D, z, steps, batch_size, device, history=False)
    sync(device)
    prof.disable()
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    st.sort_stats("tottime").print_stats(top)
    return s.getvalue()


def ops_per_step(device: torch.device) -> dict[str, float]:
    """ATen operator calls per refinement step (batch-size independent; on a GPU ~ kernel launches).

    Counted with a TorchDispatchMode as (calls with 2S steps - calls with S steps) / S on 2-D MLPs.
    """
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:  # private API; skip when it moves
        return {}

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    G, D, z_dim = build_models("mlp-2d", device)
    z = make_latents(16, z_dim)
    out = {}
    for impl in IMPLS:
        counts = []
        for s in (5, 10):
            Count.n = 0
            with Count():
                run_impl(impl, G, D, z, s, 16, device)
            counts.append(Count.n)
        out[impl] = (counts[1] - counts[0]) / 5
    return out


def check_same_update(device: torch.device) -> float:
    """With gamma=0 both implementations are deterministic: their final samples must agree."""
    G, D, z_dim = build_models("mlp-2d", device)
    z = make_latents(64, z_dim)
    _, x_plain = plain_loop(G, D, z, 3, 64, device, gamma=0.0)
    _, x_lib = library(G, D, z, 3, 64, device, history=False, gamma=0.0)
    return float((x_plain - x_lib).abs().max())


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=None, help="refinement steps S (default 10; 3 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per configuration (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (default: all cores)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: time.perf_counter (default); cpu: time.process_time, steadier on a shared machine "
                        "with --threads 1 (CPU device only)")
    p.add_argument("--quick", action="store_true", help="small N, few steps: a smoke run")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to time (default: all)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--profile", action="store_true", help="print a cProfile of one dgflow.refine call per config")
    p.add_argument("--json", metavar="PATH", help="save all numbers as JSON")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._worker:
        print(json.dumps(worker(json.loads(args._worker))))
        return

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    if args.clock == "cpu":
        if device.type != "cpu":
            p.error("--clock cpu measures host CPU time only; use --clock wall with --device cuda")
        global CLOCK
        CLOCK = time.process_time
    steps = args.steps if args.steps is not None else (3 if args.quick else 10)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    # (model, N, batch sizes, steps)
    if args.quick:
        plan = [("mlp-2d", 1000, (1000, 250, 50), steps), ("conv-32x32", 64, (32,), steps),
                ("mlp-gan", 500, (500,), 25)]
    else:
        plan = [("mlp-2d", 5000, (5000, 500, 50), steps), ("conv-32x32", 512, (128,), steps),
                ("mlp-gan", 1000, (500,), 25)]
    plan = [p for p in plan if p[0] in args.models]

    mem_method = ("torch.cuda.max_memory_allocated() - memory_allocated() before the run" if device.type == "cuda"
                  else "peak RSS increase: VmHWM after the run (reset just before it via /proc/self/clear_refs) "
                       "- VmRSS before it (ru_maxrss difference where that is unavailable); glibc "
                       f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', MMAP_THRESHOLD)}")
    print(f"# dgflow refine overhead | dgflow {dgflow.__version__} | torch {torch.__version__} | "
          f"python {platform.python_version()}")
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# device {device} ({dev_name}) | torch threads {torch.get_num_threads()} | os.cpu_count {os.cpu_count()}")
    clock = "wall-clock time.perf_counter" if args.clock == "wall" else "CPU time.process_time"
    print(f"# update: eta={ETA} gamma={GAMMA} f=KL | steps={steps} (mlp-gan: 25) | time = {clock}, best of {repeats} interleaved "
          f"repeats after a warm-up (median in 'med s')")
    print(f"# peak MiB: fresh subprocess per row, one run, {mem_method}")
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    if load is not None:
        print(f"# 1-min load average before the run: {load:.2f} on {os.cpu_count()} cores")
        if device.type == "cpu" and load > 0.5:
            print("# WARNING: other processes are using the CPU; multi-threaded timings can be inflated many times "
                  "over (every parallel op waits for a scheduler slice). Prefer --threads 1 --clock cpu here.")
    err = check_same_update(device)
    print(f"# sanity: gamma=0, 3 steps, 64 samples: max |x_plain - x_refine| = {err:.2e}")
    ops = ops_per_step(device)
    if ops:
        print("# ATen ops per step (mlp-2d; ~ kernel launches on a GPU): "
              + ", ".join(f"{k} {v:.0f}" for k, v in ops.items()))
    print("# 'ovh us/step' = (time - plain time) / (batches * steps): the library's extra cost per batch-step")

    rows = []
    for model, n, batches, model_steps in plan:
        G, D, z_dim = build_models(model, device)
        z = make_latents(n, z_dim)
        for batch in batches:
            # warm-up: every implementation once on one batch with 2 steps
            for impl in IMPLS:
                timed(impl, G, D, z[:batch], 2, batch, device)
            times = {impl: [] for impl in IMPLS}
            for _ in range(repeats):
                for impl in IMPLS:
                    times[impl].append(timed(impl, G, D, z, model_steps, batch, device))
            for impl in IMPLS:
                rows.append(dict(model=model, batch=batch, n=n, steps=model_steps, impl=impl, times=times[impl],
                                 time=min(times[impl]), median=statistics.median(times[impl])))
            if args.profile:
                print(f"\n# cProfile: dgflow.refine, {model}, batch {batch}, N {n}, steps {model_steps}")
                print(profile_library(G, D, z, model_steps, batch, device))
        del G, D, z
        gc.collect()

    if not args.no_memory:
        for r in rows:
            mem = measure_memory(dict(model=r["model"], n=r["n"], batch=r["batch"], steps=r["steps"],
                                      impl=r["impl"], device=str(device), threads=args.threads))
            r.update(mem)
            r["peak_mib"] = mem.get("cuda_peak_mib", mem["rss_peak_mib"])

    base = {(r["model"], r["batch"]): r for r in rows if r["impl"] == "plain loop"}
    head = ["model", "batch", "N", "steps", "implementation", "time s", "med s", "samples*steps/s", "peak MiB",
            "ratio vs plain", "ratio (med)", "ovh us/step"]
    lines = []
    for r in rows:
        b = base[(r["model"], r["batch"])]
        r["throughput"] = r["n"] * r["steps"] / r["time"]
        r["ratio"] = r["time"] / b["time"]
        r["ratio_median"] = r["median"] / b["median"]
        r["overhead_us_per_step"] = (r["time"] - b["time"]) / (math.ceil(r["n"] / r["batch"]) * r["steps"]) * 1e6
        peak = r.get("peak_mib")
        lines.append([r["model"], str(r["batch"]), str(r["n"]), str(r["steps"]), r["impl"], f"{r['time']:.3f}",
                      f"{r['median']:.3f}", f"{r['throughput']:,.0f}", "-" if peak is None else f"{peak:.1f}",
                      f"{r['ratio']:.3f}", f"{r['ratio_median']:.3f}", "-" if r["impl"] == "plain loop" else f"{r['overhead_us_per_step']:+.0f}"])
    markdown(head, lines)

    if args.json:
        meta = dict(torch=torch.__version__, dgflow=dgflow.__version__, device=str(device), threads=torch.get_num_threads(),
                    steps=steps, repeats=repeats, clock=args.clock, eta=ETA, gamma=GAMMA, memory_method=mem_method,
                    sanity_max_abs_diff=err, load_average=load, aten_ops_per_step=ops, quick=args.quick)
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)
        print(f"\n# saved {args.json}")


if __name__ == "__main__":
    main()
