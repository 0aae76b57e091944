"""A run's identity: every setting that can change one of its numbers, files by content.

Two runs with the same identity are replicates; two with different identities must never
be merged into one report row, and a run directory must never continue (or be skipped
as done) under a config other than the one it was trained with. The identity is the
whole resolved TrainConfig less what cannot change a number (where it is written, the
worker count, labels for reports), with the dataset replaced by a digest of its parsed
records and every weights file by its size and SHA-256, so that a renamed file is the same
run and a replaced file at the same path is not.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DetectionDataset
from ..data.synthetic import synthetic_params
from .config import TrainConfig

# TrainConfig fields that cannot change a number: output place, run label, report labels,
# loader processes (augmentation is a function of (seed, epoch, image), whatever the
# workers), whether to resume, the failure threshold for non-finite steps, the pictures.
NOT_IDENTITY = ("out_dir", "run_name", "axes", "workers", "resume", "max_nonfinite_steps", "plots")


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """{'size', 'sha256'} of a file. Memoised per (path, size, mtime): a sweep's validation,
    its launcher and each job identify the same weights file, which may be hundreds of MB."""
    st = os.stat(path)
    return dict(_file_digest(os.path.abspath(path), st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int, chunk: int = 1 << 20) -> tuple[tuple[str, Any], ...]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return (("size", size), ("sha256", h.hexdigest()))


def dataset_digest(data: DetectionDataset) -> str:
    """SHA-256 (16 hex) of what training and evaluation read of a dataset: class names, every
    record's file name, id, size and labels per split, and the ground-truth json's bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(list(data.names)).encode())
    for split in (data.train, data.val):
        h.update(f"|{split.name}|{list(split.category_ids)}|".encode())
        for r in split.records:
            h.update(f"{os.path.basename(r.path)}:{r.image_id}:{r.width}x{r.height}:".encode())
            h.update(np.ascontiguousarray(r.labels, dtype=np.float32).tobytes())
        if split.coco_json:
            h.update(file_digest(split.coco_json)["sha256"].encode())
    return h.hexdigest()[:16]


def _weights_id(value: str | None) -> Any:
    """A local file by content; anything else (a hub tag, None) as it is."""
    if value and Path(value).is_file():
        return file_digest(value)
    return value


# Settings fixed only where a run starts (the data's content, the device, the process count
# and what follows from them); a launcher deciding before then compares everything else.
DECIDED_AT_START = ("data", "device", "amp", "world_size", "val_batch_size", "final_iou_thres")


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    """The identity's part that the config alone gives: all fields but NOT_IDENTITY, files by content."""
    c = cfg.to_dict()
    for key in NOT_IDENTITY:
        c.pop(key, None)
    if cfg.data != "synthetic":
        c.pop("synthetic")
    else:
        c["synthetic"] = synthetic_params(cfg.synthetic)
    c["init_weights"] = _weights_id(cfg.init_weights)
    if "pretrained" in c["model_kwargs"]:
        c["model_kwargs"]["pretrained"] = _weights_id(c["model_kwargs"]["pretrained"])
    return c


def run_identity(cfg: TrainConfig, data: DetectionDataset, *, device_type: str, world_size: int,
                 amp: bool) -> dict[str, Any]:
    """The identity config (JSON-able) of a run of `cfg` on `data`."""
    c = _settings(cfg)
    c["data"] = {"digest": dataset_digest(data), "nc": data.nc}
    c["val_batch_size"] = cfg.val_batch(world_size)
    c["final_iou_thres"] = cfg.final_iou(coco80=bool(data.val.coco_json) and data.nc == 80)
    c["device"], c["world_size"], c["amp"] = device_type, world_size, amp
    return json.loads(json.dumps(c, default=str))  # as it reads back from summary.json (lists, not tuples)


def upgraded(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored identity config in today's form, so that a run of older code is still the same
    run: the synthetic set's parameters with their defaults filled (older runs stored only
    those the config named)."""
    c = dict(stored)
    if isinstance(c.get("synthetic"), Mapping):
        try:
            c["synthetic"] = json.loads(json.dumps(synthetic_params(c["synthetic"])))
        except ValueError:
            pass  # unknown keys: left as stored, so the comparison names them
    return c


def prelaunch_differences(stored: Mapping[str, Any], cfg: TrainConfig) -> list[str]:
    """Differences between a stored identity config and cfg in what is known before the run
    starts (all but DECIDED_AT_START): a launcher may skip a completed run only without any."""
    new = json.loads(json.dumps(_settings(cfg), default=str))
    old = {k: v for k, v in upgraded(stored).items() if k not in DECIDED_AT_START}
    return differences(old, {k: v for k, v in new.items() if k not in DECIDED_AT_START})


def identity_digest(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(identity: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'hyp.lr0': 0.01, 'data.digest': ..., ...}: one dotted key per leaf."""
    out: dict[str, Any] = {}
    for k, v in identity.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and not set(v) <= {"size", "sha256"}:
            out.update(flatten(v, key + "."))
        elif isinstance(v, Mapping) and v:
            out[key] = f"sha256:{v['sha256'][:12]}"
        else:
            out[key] = v
    return out


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """'key: old -> new' for every leaf that differs (sorted by key)."""
    a, b = flatten(old), flatten(new)
    absent = "(absent)"
    return [f"{k}: {a.get(k, absent)!r} -> {b.get(k, absent)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent)]


class IdentityMismatch(ValueError):
    """A run directory holds a run of another config; nothing was changed in it."""
