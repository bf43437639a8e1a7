"""Smoke version of every row of docs/gpu.md: train, (correct,) refine / sample, time it, write a table.

    python benchmarks/gpu_smoke.py --data data --out runs/gpu-smoke            # one GPU, about 5 minutes
    python benchmarks/gpu_smoke.py --tiny --data DIR --out OUT --device cpu    # seconds: checks the commands

``--data`` is a folder holding CIFAR-10 (any layout ``dgflow.data.load_cifar10`` reads) and, for the
STL-10 rows, ``stl10_binary/``. Every row runs the same CLI commands as docs/gpu.md with the
iterations, widths and sample counts cut (``SCALES``), through ``dgflow.cli.main`` in this process.
The table (row, status, seconds, peak GPU memory, mean logit before -> after) goes to
``OUT/smoke.md`` and ``OUT/smoke.json``; a failing row is recorded with its error and the rest run on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SCALES = {  # smoke: about 5 minutes on one modern GPU for all rows; tiny: seconds on a CPU
    "smoke": {"iterations": 200, "width": 32, "z": 64, "corr": 100, "flow_its": 200, "num_imgs": 1000, "steps": 25,
              "diff_its": 300, "fake": 500, "dg_steps": 18},
    "tiny": {"iterations": 1, "width": 4, "z": 8, "corr": 1, "flow_its": 1, "num_imgs": 8, "steps": 2,
             "diff_its": 1, "fake": 8, "dg_steps": 2},
}


def rows(s: dict, data: str, out: Path, device: str) -> dict[str, list[list[str]]]:
    """Row name -> the CLI commands (argument lists) it runs, in order."""
    dev = ["--device", device]

    def gan(ds: str, pair: str) -> list[str]:
        return ["train", "gan", "--pair", pair, "--dataset", ds, "--data", data, "--out", str(out / ds / pair),
                "--width", str(s["width"]), "--z-dim", str(s["z"]), "--iterations", str(s["iterations"]),
                "--batch-size", "64", "--quiet", *dev]

    def corrector(ds: str, target: str) -> list[str]:
        return ["train", "corrector", "--gan", str(out / ds / "sndcgan" / "checkpoint.pt"), "--target",
                str(out / ds / target / "checkpoint.pt"), "--out", str(out / ds / f"{target}-corrector"),
                "--iterations", str(s["corr"]), "--quiet", *dev]

    def with_dphi(ds: str, commands: list[list[str]]) -> list[list[str]]:
        """The corrector rows need the SN-DCGAN's D_phi (trained once: a finished checkpoint resumes as a no-op)."""
        return [gan(ds, "sndcgan"), *commands]

    def refine(config: str, ds: str, gen: str, disc: str, corr: str | None = None) -> list[str]:
        sets = [f"gen_path={out / ds / gen / 'checkpoint.pt'}", f"disc_path={out / ds / disc / 'checkpoint.pt'}",
                f"num_imgs={s['num_imgs']}", f"steps={s['steps']}", f"save_interval={s['steps']}",
                f"data_root={data}", f"exp_root={out / 'exps'}", f"device={device}", "fid_ref=null",
                "classifier_path=null", "keep_samples=false", f"batch_size={min(500, s['num_imgs'])}"]
        if corr:
            sets.append(f"corr_path={out / ds / f'{corr}-corrector' / 'checkpoint.pt'}")
        if "z_dim" in (REPO / "configs" / config).read_text():
            sets.append(f"z_dim={s['z']}")
        return ["refine", "--config", str(REPO / "configs" / config), "--overwrite", "--quiet", "--set", *sets]

    table: dict[str, list[list[str]]] = {}
    for ds, prefix in (("cifar10", "cifar10-gpu"), ("stl10", "stl10-gpu")):
        table[f"DGflow {ds} SN-DCGAN"] = [gan(ds, "sndcgan"), refine(f"{prefix}-sndcgan.yml", ds, "sndcgan", "sndcgan")]
        if ds == "stl10":
            table[f"DGflow {ds} WGAN-GP"] = [gan(ds, "wgangp"), refine(f"{prefix}-sndcgan.yml", ds, "wgangp", "wgangp")]
            continue  # ResNet, MMD-GAN, OCF-GAN, VAE and Glow take 28x28 / 32x32 only (docs/gpu.md)
        table[f"DGflow {ds} ResNet-SNGAN"] = [gan(ds, "resnet"), refine(f"{prefix}-resnet.yml", ds, "resnet", "resnet")]
        table[f"DGflow {ds} WGAN-GP"] = [gan(ds, "wgangp"), refine(f"{prefix}-wgangp.yml", ds, "wgangp", "wgangp")]
        for pair in ("mmd", "ocf"):
            table[f"DGflow {ds} {pair.upper()}-GAN + corrector"] = with_dphi(ds, [
                gan(ds, pair), corrector(ds, pair), refine(f"{prefix}-{pair}-corrector.yml", ds, pair, "sndcgan", pair)])
        table[f"DGflow {ds} VAE + corrector"] = with_dphi(ds, [
            ["train", "vae", "--dataset", ds, "--data", data, "--out", str(out / ds / "vae"), "--width", str(s["width"]),
             "--z-dim", str(s["z"]), "--iterations", str(s["iterations"]), "--quiet", *dev],
            corrector(ds, "vae"), refine(f"{prefix}-vae-corrector.yml", ds, "vae", "sndcgan", "vae")])
        table[f"DGflow {ds} Glow + corrector"] = with_dphi(ds, [
            ["train", "flow", "--arch", "glow", "--temperature", "0.7", "--dataset", ds, "--data", data, "--out",
             str(out / ds / "glow"), "--width", str(s["width"]), "--levels", "2", "--couplings", "2",
             "--iterations", str(s["flow_its"]), "--quiet", *dev],
            corrector(ds, "glow"), refine(f"{prefix}-glow-corrector.yml", ds, "glow", "sndcgan", "glow")])
    for cond in (False, True):
        name, sub = ("conditional", "dg-cond") if cond else ("unconditional", "dg")
        flag = ["--conditional"] if cond else []
        common = ["--dataset", "cifar10", "--data", data, "--batch-size", "64", "--quiet", *flag]
        table[f"DG cifar10 {name}"] = [
            ["train", "diffusion", *common, "--out", str(out / sub / "denoiser"), "--iterations", str(s["diff_its"])],
            ["train", "tdisc", *common, "--denoiser", str(out / sub / "denoiser" / "checkpoint.pt"), "--out",
             str(out / sub / "tdisc"), "--iterations", str(s["diff_its"]), "--fake-samples", str(s["fake"]),
             "--steps", str(s["dg_steps"])],
            ["sample", "--config", str(REPO / "configs" / "dg-mnist.yml"), "--overwrite", "--quiet", "--set",
             "dataset=cifar10", f"data_root={data}", "classifier_path=null",
             f"denoiser_path={out / sub / 'denoiser' / 'checkpoint.pt'}", f"disc_path={out / sub / 'tdisc' / 'checkpoint.pt'}",
             f"num_samples={s['num_imgs']}", f"batch_size={min(500, s['num_imgs'])}", f"steps={s['dg_steps']}",
             f"exp_root={out / 'exps'}", f"name={sub}", f"device={device}", *(["num_classes=10"] if cond else [])]]
    return table


def run_row(commands: list[list[str]], device: str) -> dict:
    from dgflow.cli import main

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result: dict = {"status": "ok"}
    try:
        for argv in commands:
            if main(argv) != 0:
                raise RuntimeError(f"`dgflow {' '.join(argv[:2])}` failed")
    except Exception as err:  # noqa: BLE001 (a failing row is reported; the others still run)
        result = {"status": "failed", "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc(limit=3)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder with CIFAR-10 (and stl10_binary/ for the STL-10 rows)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="seconds-long version (CPU): checks every command runs")
    ap.add_argument("--only", nargs="+", default=None, help="rows whose name contains one of these words")
    args = ap.parse_args(argv)
    out = Path(args.out)
    scale = SCALES["tiny" if args.tiny else "smoke"]
    table = rows(scale, str(args.data), out, args.device)
    if args.only:
        table = {k: v for k, v in table.items() if any(w.lower() in k.lower() for w in args.only)}
    results = {}
    for name, commands in table.items():
        print(f"== {name}", flush=True)
        results[name] = run_row(commands, args.device)
        print(f"   {results[name]['status']} in {results[name]['seconds']} s", flush=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") and torch.cuda.is_available() else args.device
    lines = [f"GPU smoke ({'tiny' if args.tiny else 'smoke'} scale) on {gpu}", "",
             "| row | status | seconds | peak GPU memory GiB |", "|---|---|---:|---:|"]
    for name, r in results.items():
        mem = "–" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        status = r["status"] if r["status"] == "ok" else f"failed: {r['error'][:80]}"
        lines.append(f"| {name} | {status} | {r['seconds']:.1f} | {mem} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.md").write_text("\n".join(lines) + "\n")
    (out / "smoke.json").write_text(json.dumps({"device": gpu, "scale": scale, "rows": results}, indent=1))
    print("\n".join(lines))
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
