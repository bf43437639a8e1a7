"""The run folder of a resumable run: whose it is (its fingerprint), its batch files and its merged samples.

What every job writes in ``exp_root/<name>/``::

    config.yml              the resolved configuration
    fingerprint.txt         a hash of the keys that change the results and of every checkpoint's sha256
    checkpoints.json        ``{key: {path, sha256}}`` of each checkpoint the run loads (a changed file is
                            refused on resume)
    batches/.../ids_<a>-<b>.pt   finished batches: the unit of resumption (tensors and JSON values only,
                            loaded with ``weights_only=True``)
    timing/<batch>.json     the wall time of each batch, kept apart from the outputs
    samples/*.npz           the merged samples (``np.load(..., allow_pickle=False)``), byte-reproducible

One run at a time holds the folder (``io.run_lock``: ``exp_root/.<name>.lock`` beside it); :func:`claim`
creates the folder or checks that it belongs to the same fingerprint. Every file is written atomically,
and the temp files an interrupted run left are removed when the folder is claimed again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .. import io
from ..config import check_run_name
from ..zoo.loading import resolve_path
from ..plots import to_uint8


@dataclass(frozen=True)
class Fingerprint:
    """What of a configuration decides a run's results: every key but ``ignored`` (those a run may resume
    with other values), the sha256 of the files the ``checkpoints`` keys name, and the ``only_when_set``
    keys only when they differ from the given default (options added later: older folders keep their
    fingerprint)."""

    ignored: frozenset[str]
    checkpoints: tuple[str, ...]
    only_when_set: Mapping[str, Any] = field(default_factory=dict)

    def checkpoint_hashes(self, cfg: Any) -> dict[str, str]:
        """``{config key: sha256 of the file}`` for each checkpoint path the config sets."""
        return {key: io.file_sha256(resolve_path(getattr(cfg, key)))
                for key in self.checkpoints if getattr(cfg, key, None)}

    def of(self, cfg: Any, checkpoints: dict[str, str] | None = None) -> str:
        """The 16-hex-digit hash of ``cfg``'s deciding keys and the checkpoints' ``{key: sha256}``."""
        items = {k: v for k, v in cfg.fingerprint_items().items()
                 if k not in self.ignored and not (k in self.only_when_set and v == self.only_when_set.get(k))}
        if checkpoints:
            items["checkpoint sha256"] = checkpoints
        return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_folder(cfg: Any, config_path: str | Path | None) -> Path:
    """``exp_root/<name>``: the name is one folder inside ``exp_root`` (checked again here for API callers)."""
    name = cfg.run_name(config_path)
    check_run_name(name)
    return Path(cfg.exp_root).expanduser() / name


def claim(run_dir: Path, cfg: Any, overwrite: bool, fingerprint: Fingerprint) -> None:
    """Create the run folder, or check that an existing one belongs to the same configuration and the
    same checkpoint bytes; ``overwrite`` discards the folder first. Call with the folder's lock held."""
    checkpoints = fingerprint.checkpoint_hashes(cfg)
    stamp = run_dir / "fingerprint.txt"
    mine = fingerprint.of(cfg, checkpoints)
    if overwrite:
        io.discard_folder(run_dir)
    elif stamp.exists() and stamp.read_text().strip() != mine:
        recorded_file = run_dir / "checkpoints.json"
        recorded = json.loads(recorded_file.read_text()) if recorded_file.exists() else None
        if recorded is None:
            raise ValueError(f"{run_dir} holds a run with a different configuration (or one made by a dgflow that "
                             "did not record its checkpoints' sha256); set another name/exp_root, or pass "
                             "--overwrite to discard it")
        for key, sha in checkpoints.items():
            old = recorded.get(key)
            if old and old["path"] == getattr(cfg, key) and old["sha256"] != sha:
                raise ValueError(f"{key} {old['path']} has changed since {run_dir} was started (sha256 "
                                 f"{old['sha256'][:12]}... then, {sha[:12]}... now), so its results would mix two "
                                 "models; restore the file, or pass --overwrite to start the run again")
        raise ValueError(f"{run_dir} holds a run with a different configuration; set another name/exp_root, "
                         "or pass --overwrite to discard it")
    elif not stamp.exists() and any((run_dir / "batches").rglob("*.pt")):
        raise ValueError(f"{run_dir} holds batch files but no fingerprint.txt, so whose they are is unknown; "
                         "pass --overwrite to discard them, or set another name/exp_root")
    run_dir.mkdir(parents=True, exist_ok=True)
    io.remove_stale_temp_files(run_dir)
    io.write_text(run_dir / "config.yml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    io.write_json(run_dir / "checkpoints.json", {key: {"path": getattr(cfg, key), "sha256": sha}
                                                 for key, sha in checkpoints.items()})
    io.write_text(stamp, mine + "\n")


# ------------------------------------------------------------------------------------------ batch files

def batch_name(ids: torch.Tensor) -> str:
    """``ids_<first>-<last + 1>``: the file stem of the batch of sample ids ``ids`` (consecutive)."""
    return f"ids_{int(ids[0]):08d}-{int(ids[-1]) + 1:08d}"


def save_batch(path: Path, tensors: dict[str, Any], info: dict[str, Any] | None = None) -> None:
    """One finished batch: tensors, lists of step numbers and ``info`` reduced to JSON values (so the
    file loads with ``weights_only=True``); every tensor is saved compactly (a slice of the run's id
    list is stored as its own ids, not the whole list)."""
    own = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in tensors.items()}
    own["info"] = json.loads(json.dumps(info or {}, default=io.jsonable))
    io.torch_save(own, path)


def load_batch(path: Path) -> dict[str, Any]:
    """A batch file of :func:`save_batch`, loaded without running code (``weights_only=True``)."""
    part = io.load_torch_file(path, what="batch file", mmap=True,
                              hint="dgflow writes batch files of tensors only: delete it to recompute its batch")
    if not isinstance(part, dict) or "ids" not in part:
        raise ValueError(f"batch file {path} is not one dgflow wrote (no ids); delete it to recompute that batch")
    part["info"] = part.get("info") or {}
    return part


def batch_files(folder: Path) -> list[Path]:
    """The finished batch files of ``folder``: ``ids_<a>-<b>.pt`` in id order, then a ``selection.pt``."""
    return sorted(folder.glob("ids_*.pt")) + sorted(folder.glob("selection.pt"))


def pending(folder: Path, count: int) -> torch.Tensor:
    """The sample ids in ``[0, count)`` that no ``ids_<a>-<b>.pt`` of ``folder`` holds yet."""
    done = torch.zeros(count, dtype=torch.bool)
    for f in batch_files(folder):
        m = re.fullmatch(r"ids_(\d+)-(\d+)\.pt", f.name)
        if m:
            done[int(m.group(1)):min(int(m.group(2)), count)] = True
    return torch.nonzero(~done).flatten()


class Merged:
    """The finished batches of a folder that hold samples below ``count``, put back in sample-id order."""

    def __init__(self, folder: Path, count: int):
        parts = [load_batch(f) for f in batch_files(folder)]
        self.parts = [p for p in parts if len(p["ids"]) and int(p["ids"][0]) < count]
        if self.parts:
            ids = torch.cat([p["ids"] for p in self.parts])
            self.order = torch.argsort(ids)
            self.ids = ids[self.order]

    def __bool__(self) -> bool:
        return bool(self.parts)

    def has(self, key: str) -> bool:
        """Whether the batches hold ``key`` (``z`` of a data-space run and unconditional ``labels`` are ``None``)."""
        return self.parts[0].get(key) is not None

    def cat(self, key: str, index: int | None = None) -> torch.Tensor:
        """``key`` of every batch (its entry ``index`` for per-step lists), in sample-id order."""
        return torch.cat([p[key] if index is None else p[key][index] for p in self.parts])[self.order]


def record_seconds(run_dir: Path, name: str, began: float) -> None:
    """The wall time of one batch, kept apart from the outputs so that those stay byte-reproducible."""
    io.write_json(run_dir / "timing" / f"{name}.json", {"seconds": round(time.perf_counter() - began, 3)})


def total_seconds(run_dir: Path) -> None:
    """``timing.json``: the wall time summed over the batches (and ranks) of ``timing/``, if any."""
    seconds = [json.loads(f.read_text())["seconds"] for f in sorted((run_dir / "timing").glob("*.json"))]
    if seconds:
        io.write_json(run_dir / "timing.json", {"method_seconds": round(sum(seconds), 2), "batches": len(seconds)})


# ------------------------------------------------------------------------------------------ samples

def sample_array(x: torch.Tensor) -> np.ndarray:
    """What a samples file holds for ``x``: images ``[N, C, H, W]`` as uint8 ``[N, H, W, C]``, else ``x``."""
    return to_uint8(x) if x.ndim == 4 else x.numpy()
