"""The index cache of a YOLO-txt split (YOLOv5's `labels.cache`, in our own format).

Indexing COCO's 118k training images (header + end-marker check of every image, parse of
every label file) costs seconds of CPU per 10k files; a re-run on unchanged files should
cost only what proving them unchanged costs. The cache holds every scan result (labels,
original sizes, skip reasons) keyed on:
  - the cache format version, the number of classes (a class >= nc is an error whose
    message comes from the parse, so another nc re-scans) and the scan's options (the
    pixel limit, whether pixels were decoded: image_check.py),
  - the ordered image and label paths,
  - the size and mtime (ns) of every one of those files (a missing label file counts as
    -1), so an edited, added or removed file invalidates the cache.
It lives where YOLOv5 puts its own, beside the labels folder (labels/train2017.<digest>.cache),
or, if that folder is not writable, under the user cache folder named by a hash of the
labels folder. It is a plain .npz (no pickle: loading a cache never executes code) written
through a temporary file and an atomic rename; an unreadable or mismatching cache is
ignored and rewritten.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)

INDEX_CACHE_VERSION = 2  # 2: scan options in the key (max_image_pixels, decode)
SUFFIX = ".cache"

# One scan result per image, as yolo_txt._scan_one returns it:
#   ("ok", labels (n, 5) float32, w, h, n_dup, has_label) or ("skip", reason, detail)
ScanResult = tuple


def _stats(paths: Sequence[str]) -> np.ndarray:
    """(n, 2) int64 [size, mtime_ns] of each path, [-1, -1] where it does not exist.

    A plain loop: 236k local files take ~0.7 s; threads made it 2x slower (GIL handoffs
    around each short system call)."""
    out = np.full((len(paths), 2), -1, np.int64)
    stat = os.stat
    for i, p in enumerate(paths):
        try:
            st = stat(p)
        except OSError:
            continue
        out[i, 0] = st.st_size
        out[i, 1] = st.st_mtime_ns
    return out


def index_key(image_paths: Sequence[str], label_paths: Sequence[str], nc: int, options: str = "") -> str:
    """A digest of everything the scan results depend on (see the module docstring);
    options: the scan's settings as a string."""
    h = hashlib.sha256()
    h.update(f"v{INDEX_CACHE_VERSION} nc={nc} n={len(image_paths)} {options}\n".encode())
    h.update("\n".join(image_paths).encode("utf-8", "surrogateescape"))
    h.update(b"\0")
    h.update("\n".join(label_paths).encode("utf-8", "surrogateescape"))
    h.update(_stats(image_paths).tobytes())
    h.update(_stats(label_paths).tobytes())
    return h.hexdigest()


def default_index_dir() -> Path:
    """$YOLO_CORE_CACHE/index, or ~/.cache/yolo_core/index (XDG_CACHE_HOME respected)."""
    env = os.environ.get("YOLO_CORE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yolo_core"
    return base / "index"


def cache_paths(label_paths: Sequence[str]) -> list[Path]:
    """Where the cache of a split may live, preferred first: beside its (first) labels
    folder, as YOLOv5 (labels/train2017 -> labels/train2017.<digest>.cache), else in the
    user cache. The digest of the label path list keeps two splits that share a labels
    folder (train and val lists over one folder) from overwriting each other's cache."""
    folder = Path(os.path.abspath(label_paths[0])).parent
    digest = hashlib.sha1("\n".join(label_paths).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    where = hashlib.sha1(os.fspath(folder).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    name = f"{folder.name}.{digest}{SUFFIX}"
    return [folder.parent / name, default_index_dir() / f"{where}-{name}"]


def load_index(label_paths: Sequence[str], key: str, *also: str) -> list[ScanResult] | None:
    """The cached scan results for `key` (or for one of the keys `also`, results at least as
    good: a scan that decoded the pixels serves one that would not), or None (no cache,
    stale, or unreadable)."""
    keys = {key, *also}
    for path in cache_paths(label_paths):
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) not in keys:
                    continue
                return _unpack(z)
        except FileNotFoundError:
            continue
        except Exception as e:  # damaged or foreign file: scan again and overwrite it
            LOGGER.warning("index cache %s unreadable (%s: %s); rescanning", path, type(e).__name__, e)
    return None


def save_index(label_paths: Sequence[str], key: str, results: Sequence[ScanResult]) -> Path | None:
    """Write the cache to the first writable location; None if none is (a warning, not an error)."""
    arrays = _pack(results)
    for path in cache_paths(label_paths):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, key=np.array(key), **arrays)
                os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is as shared as the dataset
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            return path
        except OSError as e:
            LOGGER.debug("index cache not writable at %s: %s", path, e)
    LOGGER.warning("index cache: no writable location for %s; the next run scans again", cache_paths(label_paths)[0])
    return None


def _pack(results: Sequence[ScanResult]) -> dict[str, np.ndarray]:
    n = len(results)
    ok = np.zeros(n, bool)
    wh = np.zeros((n, 2), np.int64)
    ndup = np.zeros(n, np.int64)
    has_label = np.zeros(n, bool)
    counts = np.zeros(n, np.int64)
    labels, skips = [], []
    for i, r in enumerate(results):
        if r[0] == "ok":
            _, lab, w, h, nd, hl = r
            ok[i], wh[i], ndup[i], has_label[i], counts[i] = True, (w, h), nd, hl, len(lab)
            labels.append(np.asarray(lab, np.float32).reshape(-1, 5))
        else:
            skips.append([i, r[1], r[2]])
    return {"ok": ok, "wh": wh, "ndup": ndup, "has_label": has_label, "counts": counts,
            "labels": np.concatenate(labels) if labels else np.zeros((0, 5), np.float32),
            "skips": np.array(json.dumps(skips))}


def _unpack(z) -> list[ScanResult]:
    ok, wh, ndup, has_label = z["ok"].tolist(), z["wh"].tolist(), z["ndup"].tolist(), z["has_label"].tolist()
    counts, labels = z["counts"], z["labels"]
    ends = np.cumsum(counts).tolist()
    starts = [e - c for e, c in zip(ends, counts.tolist())]
    skips = {int(i): (reason, detail) for i, reason, detail in json.loads(str(z["skips"]))}
    out: list[ScanResult] = []
    for i, good in enumerate(ok):
        if good:
            out.append(("ok", labels[starts[i]:ends[i]], wh[i][0], wh[i][1], ndup[i], has_label[i]))
        else:
            reason, detail = skips[i]
            out.append(("skip", reason, detail))
    return out


def remove_index_caches(data_yaml: str | os.PathLike) -> int:
    """Delete the index caches of every YOLO-txt split of a dataset yaml (forces a cold scan)."""
    from .sources import _read_spec, _resolve, _split_entries
    from .yolo_txt import image_to_label_path, list_images

    data, base, source, _ = _read_spec(data_yaml)
    root = _resolve(data.get("path") or ".", base)
    removed = 0
    for key in ("train", "val"):
        paths = [p for e in _split_entries(data, key, root, source) for p in list_images(e, key, source)]
        if not paths:
            continue
        for c in cache_paths([image_to_label_path(p) for p in paths]):
            if c.is_file():
                c.unlink()
                removed += 1
    return removed
