"""Shared helpers of the benchmark sections: timing, machine facts, memory, results.

Every section runs in its own process (see run.py), so its peak RSS is its own and one
crashing section does not lose the others. A section returns a list of `Row`s.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning threads collapse shared cores

import json
import platform
import resource
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure. `anchor` is the official YOLOv5 figure on this kind of machine
    (None where there is none); `higher_better` orients the ratio so that > 1 means we
    are faster / leaner; `target` is the ratio the issue asks for (None: no target)."""

    section: str
    name: str
    value: float | None
    unit: str
    anchor: float | None = None
    higher_better: bool = True
    target: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.anchor is None or self.value <= 0 or self.anchor <= 0:
            return None
        return self.value / self.anchor if self.higher_better else self.anchor / self.value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def section_args() -> "argparse.Namespace":
    """The arguments benchmarks.run passes to every section script (--out, --quick, --cache-dir)."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cache-dir", default=None)
    return ap.parse_args()


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def set_threads(n: int = 2) -> None:
    """torch intra-op threads (the official figures used 2)."""
    import torch

    torch.set_num_threads(n)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, load, library versions: what makes two RESULTS.md rows comparable."""
    import cv2
    import numpy
    import torch

    facts = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
             "torch": torch.__version__, "numpy": numpy.__version__, "opencv": cv2.__version__,
             "torch_threads": torch.get_num_threads(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
    for mod in ("torchvision", "timm", "pycocotools", "faster_coco_eval"):
        try:
            from importlib.metadata import version

            facts[mod] = version(mod.replace("_", "-") if mod == "faster_coco_eval" else mod)
        except Exception:
            facts[mod] = None
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def write_rows(path: str | Path, rows: list[Row]) -> None:
    Path(path).write_text(json.dumps([r.to_json() for r in rows], indent=1))


def read_rows(path: str | Path) -> list[Row]:
    return [Row(**d) for d in json.loads(Path(path).read_text())]
