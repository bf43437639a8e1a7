"""Files in and out, in one place: atomic writes, safe loading, run-folder locks.

* Output is written to a temporary file in the same folder, then renamed over the target: a
  crash or an interrupt never leaves a half-written result behind.
* Input that a user (or anyone who can write to their disk) could have made is loaded without
  running code: ``torch.load(weights_only=True)`` (:func:`load_torch_file`); a file that needs
  full unpickling is refused unless the caller opts in with ``trust=True``.
* A run folder is used by one run at a time (:func:`run_lock`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n")


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically; the bytes do not depend on the temporary file's name."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: the bytes do not name the temp file
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:  # torch's writer hides the OS error (disk full, quota): say what it likely is
            free = shutil.disk_usage(Path(tmp).parent).free
            raise OSError(errno.EIO, f"writing {path} failed ({exc}); {free / 2**20:.0f} MiB free on that disk: "
                          "is it full or read-only?") from exc


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """``fig.savefig`` atomically (the format follows ``path``'s suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)


def write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Run ``writer(tmp_path)`` and move the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def jsonable(obj: Any) -> Any:
    """A JSON value for what ``json`` cannot write: arrays and tensors as lists, sets and tuples as lists, else ``str``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


# ------------------------------------------------------------------------------ trust boundaries

TRUST_HINT = ("if you trust the file and whoever wrote it, opt in to full unpickling (which can run any code "
              "the file holds): --trust-checkpoint on the command line, trust_checkpoint: true in a config, "
              "trust=True in Python")


class UntrustedFileError(ValueError):
    """A file that only loads with full unpickling, refused because the caller did not opt in."""


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(tree: Any) -> str:
    """A sha256 over a nested dict/list of tensors and plain values: keys, dtypes, shapes and bytes.

    It is what a dgflow checkpoint records of its models, so a flipped byte in a weight is caught on load.
    """
    import torch

    digest = hashlib.sha256()

    def walk(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            t = node.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(node, dict):
            digest.update(b"{")
            for key in sorted(node, key=str):
                digest.update(json.dumps(str(key)).encode())
                walk(node[key])
            digest.update(b"}")
        elif isinstance(node, (list, tuple)):
            digest.update(b"[")
            for item in node:
                walk(item)
            digest.update(b"]")
        else:
            digest.update(json.dumps(node, sort_keys=True, default=str).encode())

    walk(tree)
    return digest.hexdigest()


def checkpoint_sha256(models: dict[str, dict[str, Any]]) -> str:
    """The sha256 a dgflow checkpoint records of its weights: every role's state dict (names, dtypes, shapes, bytes)."""
    return tensors_sha256({role: rec.get("state_dict") for role, rec in models.items()})


def load_torch_file(path: str | os.PathLike, *, trust: bool = False, map_location: Any = "cpu",
                    what: str = "checkpoint", mmap: bool = False, hint: str = TRUST_HINT) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, no code.

    A file that needs full unpickling raises :class:`UntrustedFileError` unless ``trust``; a
    truncated or corrupt file raises ``ValueError`` naming it.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if not trust:
            first = str(exc).strip().splitlines()
            reason = next((line for line in first if "Unsupported global" in line), first[0] if first else "")
            raise UntrustedFileError(f"{what} {path} holds Python objects beyond tensors and plain values, which "
                                     f"only full unpickling loads ({reason.strip()}); refused. {hint}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.errno is not None:
            raise
        raise ValueError(f"{what} {path} is not a readable PyTorch file (truncated or corrupt?): {exc}") from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{what} {path} is not a readable PyTorch file (truncated or corrupt?): {exc}") from exc


def load_checkpoint_file(path: str | os.PathLike, trust: bool = False, map_location: Any = "cpu") -> Any:
    """A checkpoint's contents (:func:`load_torch_file`); a dgflow checkpoint's models are checked
    against the sha256 it recorded when saved."""
    payload = load_torch_file(path, trust=trust, map_location=map_location)
    if isinstance(payload, dict) and payload.get("format") == "dgflow" and "sha256" in payload:
        if checkpoint_sha256(payload.get("models", {})) != payload["sha256"]:
            raise ValueError(f"checkpoint {path} is corrupt: its weights do not match the sha256 recorded when it "
                             "was saved (a damaged copy or download?); copy or train it again")
    return payload


# ------------------------------------------------------------------------------- run folders


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``run_dir`` (``.<name>.lock`` beside it) for the block.

    A second run of the same folder raises ``RuntimeError`` at once, or waits for the first with ``wait``.
    The lock file lives beside the folder so that discarding the folder (``--overwrite``) keeps it.
    """
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run unlocked
        yield
        return
    lock_path = run_dir.parent / f".{run_dir.name}.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise RuntimeError(f"another dgflow run (pid {holder}) is using {run_dir}; wait for it to finish, pass "
                               "--wait to queue behind it, or set another name/exp_root") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files (``.<name>.*.tmp``) an interrupted run left in ``folder``; call with its lock held."""
    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def discard_folder(folder: str | os.PathLike) -> None:
    """Remove ``folder`` as one step: rename it aside (atomic), then delete the renamed copy."""
    folder = Path(folder)
    if not folder.exists():
        return
    for stale in folder.parent.glob(f".{folder.name}.discarded-*"):  # left by an interrupted discard
        shutil.rmtree(stale, ignore_errors=True)
    aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.discarded-"))
    os.replace(folder, aside / folder.name)
    shutil.rmtree(aside)


def write_npz(path: str | Path, arrays: dict[str, Any]) -> None:
    """``np.savez(path, **arrays)``, atomically, without pickles and with a fixed time stamp in the zip
    entries, so that equal arrays give equal bytes."""
    import zipfile

    import numpy as np  # here: importing dgflow.io stays light

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                with zf.open(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                             force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)

    write_with(path, write)
