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

LOG = logging.getLogger(__name__)
LOCK_NAME = ".sweep.lock"


class SweepLocked(SystemExit):
    """Another live sweep owns this sweep directory; nothing was launched (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


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
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.owner['host']}.{self.owner['pid']}")
        tmp.write_text(json.dumps(self.owner))
        try:
            for _ in range(2):
                try:
                    os.link(tmp, self.path)  # atomic: fails if the lock exists, and it is never half-written
                    return self
                except FileExistsError:
                    self._take_over_if_stale()
            raise SweepLocked(f"{self.path}: could not be taken (it reappeared while checking)")
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over_if_stale(self) -> None:
        try:
            held = json.loads(self.path.read_text())
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            held = {}
        who = (f"pid {held.get('pid', '?')} on {held.get('host', '?')} since {held.get('started', '?')} "
               f"({held.get('command', '?')})")
        if held.get("host") == self.owner["host"] and isinstance(held.get("pid"), int) \
                and not _pid_alive(held["pid"]):
            LOG.warning("%s was left by a sweep that is no longer running (%s): taking it over", self.path, who)
            self.path.unlink(missing_ok=True)
            return
        where = "this host" if held.get("host") == self.owner["host"] else "another host: liveness cannot be checked"
        raise SweepLocked(
            f"another sweep is running in {self.path.parent}: {who}, {where}. Nothing was launched. Wait for "
            f"it, give another hydra.sweep.dir, or delete {self.path} once that sweep is known to be gone.")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            held = json.loads(self.path.read_text())
            if (held.get("host"), held.get("pid")) == (self.owner["host"], self.owner["pid"]):
                self.path.unlink()
        except (OSError, ValueError):
            pass
