"""Shared test fixtures: reference vectors of the official YOLOv5, offline hubs, few threads."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see yolo_core/__init__.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path:
    env = os.environ.get("YOLO_REFERENCE_DIR")
    return Path(env) if env else REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (vectors made with the official YOLOv5); a missing dir is an error."""
    d = _reference_dir()
    if not (d / "loss_case.pt").is_file():
        raise FileNotFoundError(f"reference vectors not found in {d}; set YOLO_REFERENCE_DIR to the folder "
                                f"holding loss_case.pt (shared/reference beside the checkout)")
    return d
