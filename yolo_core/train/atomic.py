"""Atomic file writes: write a temp file in the same directory, fsync, then rename.

A run killed mid-write leaves the previous file intact, never a truncated one. What it
may leave is the temp file itself (`.<name>.<8 random chars>.tmp`, as big as a
checkpoint); remove_orphaned_temps deletes those when a run starts or resumes. A write
that fails (a full disk: torch.save says only "unexpected pos ...") raises
AtomicWriteError naming the file, the cause, the free space and how to continue.
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp(prefix=".<name>.", suffix=".tmp")
# what torch's zip writer says when a write fails (it hides the OSError)
_TORCH_WRITE_FAILURE = ("unexpected pos", "file write failed", "PytorchStreamWriter")
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class AtomicWriteError(OSError):
    """Writing a file failed; the previous version of the file (if any) is intact."""


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # e.g. no inode left
        raise _write_error(path, e) from e
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for the whole group
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) or any(s in str(e) for s in _TORCH_WRITE_FAILURE):
            raise _write_error(path, e) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_error(path: Path, e: BaseException) -> AtomicWriteError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there now"
    except OSError:
        free = "free space unknown"
    if getattr(e, "errno", None) in _DISK_ERRNOS:
        why = "the disk (or quota, or file size limit) is full"
    elif isinstance(e, RuntimeError):  # torch's zip writer drops the OSError behind a short write
        why = "the write failed (torch does not say why; most often a full disk, quota or file size limit)"
    else:
        why = "the write failed"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    cause = f"{type(e).__name__}: {lines[0] if lines else ''}"
    err = AtomicWriteError(f"could not write {path}: {why} ({cause}; {free}). The previous {path.name}, if any, "
                           f"is intact: free space and run again, and the run resumes from the last complete "
                           f"checkpoint")
    err.errno = getattr(e, "errno", None)
    return err


def remove_orphaned_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files of atomic writes that never finished (the process was killed
    between mkstemp and rename) in `folder`; returns what was removed. Call it only when
    no write to that folder can be in flight (a run's start, before its first write)."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return removed
    for p in entries:
        if _TEMP.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    _atomic(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(obj: Any, path: str | Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n", path)


def atomic_write_json_gz(obj: Any, path: str | Path) -> None:
    """Compact JSON, gzip-compressed (mtime 0: the same content gives the same bytes)."""
    data = gzip.compress(json.dumps(obj, separators=(",", ":"), allow_nan=False).encode(), mtime=0)
    _atomic(Path(path), lambda f: f.write(data))
