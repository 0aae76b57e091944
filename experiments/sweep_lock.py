"""One live sweep per sweep directory.

Two sweeps launched into one directory would train every job twice at once, into the same
run directories (each resuming and overwriting the other's last.pt). The sweeper holds
`<sweep dir>/.sweep.lock` (the owner's host, pid and command) while it launches and waits;
a second sweep refuses with the owner named. A lock left by a sweep that was killed is
taken over when its pid is gone on this host; on another host liveness cannot be checked,
so the message says which file to delete once that sweep is known to be gone.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from experiments.exits import InvalidConfig

LOG = logging.getLogger(__name__)
LOCK_NAME = ".sweep.lock"


class SweepLocked(InvalidConfig):
    """Another live sweep owns this sweep directory; nothing was launched (exit status 2)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class SweepLock:
    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / LOCK_NAME
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}

    def __enter__(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                return self
            self._take_over_if_stale()
        raise SweepLocked(f"{self.path}: could not be taken (it reappeared while checking)")

    def _create(self) -> bool:
        """Write the lock if there is none, atomically and never half-written; False if there is one."""
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.owner['host']}.{self.owner['pid']}")
        tmp.write_text(json.dumps(self.owner))
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create instead
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.owner))
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over_if_stale(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return  # released meanwhile: try again
        try:
            held = json.loads(text)
        except ValueError:
            held = {}
        who = (f"pid {held.get('pid', '?')} on {held.get('host', '?')} since {held.get('started', '?')} "
               f"({held.get('command', '?')})")
        if held.get("jobs"):
            raise SweepLocked(
                f"{len(held['jobs'])} job(s) of an interrupted sweep in {self.path.parent} may still be running on "
                f"the cluster (ids {' '.join(map(str, held['jobs']))}; {who}). Nothing was launched: a second "
                f"copy would write into the same run directories. When squeue/qstat no longer lists them (or after "
                f"scancel/qdel), delete {self.path} and run again.")
        if held.get("host") == self.owner["host"] and isinstance(held.get("pid"), int) \
                and not _pid_alive(held["pid"]):
            self._remove_if_unchanged(text)
            LOG.warning("%s was left by a sweep that is no longer running (%s): taken over", self.path, who)
            return
        where = "this host" if held.get("host") == self.owner["host"] else "another host: liveness cannot be checked"
        raise SweepLocked(
            f"another sweep is running in {self.path.parent}: {who}, {where}. Nothing was launched. Wait for "
            f"it, give another hydra.sweep.dir, or delete {self.path} once that sweep is known to be gone.")

    def _remove_if_unchanged(self, text: str) -> None:
        """Remove the stale lock `text`, not one another process created since it was read: move it
        aside (only one process can), check it is the one judged stale, else put it back."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{self.owner['host']}.{self.owner['pid']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process took it over first
        try:
            if aside.read_text() != text:
                os.link(aside, self.path)  # a new owner's lock: restore it (the next attempt sees it)
        except OSError:
            pass
        finally:
            aside.unlink(missing_ok=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            held = json.loads(self.path.read_text())
            if (held.get("host"), held.get("pid")) != (self.owner["host"], self.owner["pid"]):
                return
            if held.get("jobs"):  # left running on the cluster: the next sweep must not duplicate them
                LOG.warning("%s is kept: %d job(s) may still run on the cluster", self.path, len(held["jobs"]))
                return
            self.path.unlink()
        except (OSError, ValueError):
            pass


def record_running_jobs(sweep_dir: str | Path, job_ids: list[str]) -> None:
    """An interrupted sweep leaves these jobs running on the cluster: keep the lock, naming them."""
    path = Path(sweep_dir) / LOCK_NAME
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    held["jobs"] = [str(j) for j in job_ids]
    tmp = path.with_name(f"{LOCK_NAME}.jobs.{os.getpid()}")
    tmp.write_text(json.dumps(held))
    os.replace(tmp, path)
