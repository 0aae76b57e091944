"""Collect run directories into pandas, reading only the files of the run-directory contract.

Why only files: a report must be rebuildable from any copy of an output tree, months
later, without the code (torch, Hydra, yolo_core) that trained it. So this module reads
summary.json, results.csv and .hydra/overrides.yaml and nothing else, and it never
raises on a bad run: a sweep on a cluster always leaves some runs half-written, killed
or failed, and the report must show them rather than crash on them (see
docs/run_directory.md for the schema).
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: The 12 COCO stats plus YOLOv5's precision/recall, in the order of summary.json.
METRICS: tuple[str, ...] = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
    "precision", "recall",
)
COCO_STATS = METRICS[:12]

#: Statuses written by training, plus the two that only analysis assigns:
#: missing (a job dir with .hydra/ but no summary.json) and invalid (unreadable summary).
STATUSES: tuple[str, ...] = ("completed", "failed", "running", "preempted", "missing", "invalid")
WRITTEN_STATUSES = frozenset(STATUSES[:4])

SCALARS: tuple[str, ...] = ("best_epoch", "epochs_completed", "wall_time_s", "train_images_per_s",
                            "device", "world_size", "git_rev")

#: Prefix of the columns holding a run's flattened identity (summary["identity"]["config"]).
IDENTITY_PREFIX = "cfg."
#: Axes that older trainers wrote under another name, read under today's: one setting, one column.
RENAMED_AXES = {"batch": "batch_size"}
#: Columns the report itself fills: an axis of that name (a sweep over `status`) is renamed.
RESERVED_COLUMNS = frozenset({"run_dir", "rel_dir", "status", "error", "run_name", *METRICS})
#: Column of summary["identity"]["digest"]; NaN for a run without identity.
DIGEST = "identity_digest"
_HEX = frozenset("0123456789abcdef")

# Directories that never hold a run of their own; skipping them keeps the walk cheap.
_PRUNE = frozenset({".hydra", "checkpoints", "__pycache__", ".git", ".venv", "node_modules"})


@dataclass
class Runs:
    """What collect_runs found.

    runs: one row per run directory (status, axes, model facts, metrics, timings).
    epochs: one row per (run, epoch) from results.csv, tidy, with the run's axes.
    axes: names of the study's axes, in order of first appearance (the columns of
    `runs` that came from summary["axes"]).
    problems: (path, message) for everything that could not be read as the contract says.
    roots: the directories searched.
    """

    runs: pd.DataFrame
    epochs: pd.DataFrame
    axes: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)

    @property
    def completed(self) -> pd.DataFrame:
        """The runs whose metrics may be averaged (only completed runs count)."""
        return self.runs[self.runs["status"] == "completed"]


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories under root: any dir holding summary.json or a .hydra/ folder.

    A .hydra/ without summary.json is a job that never started training or died before
    its first write; it is kept so the report can list it as missing, unless run
    directories lie below it (then it is the directory of the process that launched them).
    """
    found: list[Path] = []
    if not root.is_dir():
        return found
    has_summary: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if "summary.json" in filenames or ".hydra" in dirnames:
            found.append(Path(dirpath))
            if "summary.json" in filenames:
                has_summary.add(Path(dirpath))
        dirnames[:] = sorted(d for d in dirnames if d not in _PRUNE)
    # a .hydra/ without summary.json above other runs is the Hydra run of a launcher (a tune
    # search holding its trial_<n> runs), not a run that never started
    above_runs = {p for d in found for p in d.parents}
    return [d for d in found if d in has_summary or d not in above_runs]


def collect_runs(*roots: str | os.PathLike[str]) -> Runs:
    """Scan roots recursively and return every run found, readable or not.

    Overlapping roots are fine (a run is listed once). Never raises on the content of a
    run directory; what could not be read is in Runs.problems.
    """
    root_paths = [Path(r) for r in roots]
    problems: list[tuple[str, str]] = []
    records: list[dict[str, Any]] = []
    epoch_frames: list[pd.DataFrame] = []
    axes: list[str] = []
    seen: set[Path] = set()
    for root in root_paths:
        if not root.is_dir():
            problems.append((str(root), "not a directory"))
            continue
        for run_dir in find_run_dirs(root):
            key = run_dir.resolve()
            if key in seen:
                continue
            seen.add(key)
            rel = run_dir.relative_to(root).as_posix()
            if len(root_paths) > 1:
                rel = f"{root.name}/{rel}" if rel != "." else root.name
            rec, run_axes, run_problems = read_run(run_dir)
            rec["rel_dir"] = rel
            problems.extend(run_problems)
            for a in run_axes:
                if a not in axes:
                    axes.append(a)
            records.append(rec)
            frame, csv_problems = read_results_csv(run_dir / "results.csv", required=rec["status"] == "completed")
            problems.extend(csv_problems)
            if frame is not None and len(frame):
                ident = {"run_dir": rec["run_dir"], "status": rec["status"], **{a: rec.get(a) for a in run_axes}}
                ident = {k: v for k, v in ident.items() if k not in frame.columns}
                epoch_frames.append(pd.concat([pd.DataFrame(ident, index=frame.index), frame], axis=1))

    base_cols = ["run_dir", "rel_dir", "status", "error", "run_name"]
    runs = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=base_cols)
    for col in (*base_cols, *METRICS, *SCALARS, DIGEST):
        if col not in runs.columns:
            runs[col] = math.nan
    front = [*base_cols, *axes]
    back = identity_columns(runs)  # last, so runs.csv reads as before up to them
    runs = runs[front + [c for c in runs.columns if c not in front and c not in back] + back]
    if epoch_frames:
        epochs = pd.concat(epoch_frames, ignore_index=True, sort=False)
    else:
        epochs = pd.DataFrame(columns=["run_dir", "status", *axes, "epoch"])
    return Runs(runs=runs.reset_index(drop=True), epochs=epochs, axes=axes, problems=problems,
                roots=root_paths)


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """One run's row, its axis names and its problems, from summary.json (or .hydra/)."""
    problems: list[tuple[str, str]] = []
    rec: dict[str, Any] = {"run_dir": str(run_dir), "error": None, "run_name": None}
    path = run_dir / "summary.json"
    summary: Any = None
    if not path.is_file():
        rec["status"] = "missing"
    else:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            problems.append((str(path), f"unreadable summary.json: {e}"))
            rec["status"] = "invalid"
            rec["error"] = f"unreadable summary.json: {e}"
        else:
            if not isinstance(summary, dict):
                problems.append((str(path), f"summary.json holds a {type(summary).__name__}, not an object"))
                rec["status"] = "invalid"
                rec["error"] = "summary.json is not a JSON object"
                summary = None
    if summary is None:
        # No usable summary: the Hydra overrides still say which configuration it was.
        run_axes = _axes_from_overrides(run_dir / ".hydra" / "overrides.yaml")
        rec.update(run_axes)
        rec["run_name"] = run_dir.name
        for m in METRICS:
            rec[m] = math.nan
        return rec, list(run_axes), problems

    status = summary.get("status")
    if status not in WRITTEN_STATUSES:
        problems.append((str(path), f"unknown status {status!r}"))
        rec["status"] = "invalid"
        rec["error"] = f"unknown status {status!r}"
    else:
        rec["status"] = status
        err = summary.get("error")
        rec["error"] = None if err is None else str(err)
        if status == "failed" and not rec["error"]:
            rec["error"] = "(failed without an error message)"
    rec["run_name"] = summary.get("run_name")

    raw_axes = summary.get("axes")
    if not isinstance(raw_axes, dict):
        problems.append((str(path), "no 'axes' object"))
        raw_axes = {}
    raw_axes = {RENAMED_AXES.get(str(k), str(k)): v for k, v in raw_axes.items()}
    for k in [k for k in raw_axes if k in RESERVED_COLUMNS]:
        problems.append((str(path), f"axis {k!r} has the name of a report column: read as '{k}_axis'"))
        raw_axes[f"{k}_axis"] = raw_axes.pop(k)
    run_axes = list(raw_axes)
    for k, v in raw_axes.items():
        rec[str(k)] = _scalar(v)

    model = summary.get("model")
    if isinstance(model, dict):
        for k, v in model.items():
            col = "model_name" if k == "name" else str(k)
            if col in rec or col in METRICS:
                col = f"model_{k}"
            rec[col] = _scalar(v)
    elif model is not None:
        problems.append((str(path), "'model' is not an object"))

    metrics = summary.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        problems.append((str(path), "'metrics' is not an object"))
        metrics = None
    metrics = metrics or {}
    for m in METRICS:
        rec[m] = _metric(metrics.get(m), m, path, problems)
    if rec["status"] == "completed" and all(math.isnan(rec[m]) for m in METRICS):
        problems.append((str(path), "completed run without metrics"))

    for k in SCALARS:
        rec[k] = _scalar(summary.get(k))
    final = summary.get("final_eval")
    speed = final.get("speed_ms") if isinstance(final, dict) else None
    rec["inference_ms"] = _scalar(speed.get("inference")) if isinstance(speed, dict) else math.nan
    if summary.get("world_size") is None:
        rec["world_size"] = 1  # written before DDP existed: one process
    versions = summary.get("versions")
    if isinstance(versions, dict):
        for k, v in versions.items():
            rec[f"version_{k}"] = _scalar(v)
    digest, flat = read_identity(summary, path, rec["status"], problems)
    rec[DIGEST] = digest
    rec.update({IDENTITY_PREFIX + k: v for k, v in flat.items()})
    return rec, run_axes, problems


def read_identity(summary: dict[str, Any], path: Path, status: str,
                  problems: list[tuple[str, str]]) -> tuple[Any, dict[str, Any]]:
    """(digest, flattened config) of summary["identity"], or (NaN, {}) without a usable one.

    Why tolerate absence: runs of older code, and runs that failed before the trainer
    computed the identity, have none; the report then groups them by their axes. The
    absence is a problem only for a completed run (the only kind put into report rows).
    """
    ident = summary.get("identity")
    if ident is None:
        if status == "completed":
            problems.append((str(path), "no 'identity' (older trainer?): its row is grouped by the axes only"))
        return math.nan, {}
    digest = ident.get("digest") if isinstance(ident, dict) else None
    config = ident.get("config") if isinstance(ident, dict) else None
    if not (isinstance(digest, str) and len(digest) == 16 and set(digest) <= _HEX and isinstance(config, dict)):
        problems.append((str(path), "malformed 'identity' (want a 16-hex digest and a config object): ignored"))
        return math.nan, {}
    return digest, flatten_identity(config)


def flatten_identity(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The trainer's flattening rule: one dotted key per leaf ('hyp.lr0', 'data.digest').

    A {"size", "sha256"} dict (a weights file, identified by content) becomes the single
    value 'sha256:<first 12 hex>', so a renamed file compares equal and a replaced one does
    not. Values are made safe for a pandas column and for equality: JSON null becomes the
    text 'null' (a column's NaN means 'no such key'), lists their JSON text. An empty dict
    has no leaf and gives no key (model_kwargs of a yolov5 model).
    """
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and set(v) <= {"size", "sha256"}:
            out[key] = f"sha256:{str(v.get('sha256'))[:12]}"
        elif isinstance(v, dict):
            out.update(flatten_identity(v, key + "."))
        else:
            out[key] = "null" if v is None else _scalar(v)
    return out


def identity_columns(frame: pd.DataFrame) -> list[str]:
    """The cfg.* columns of a runs frame, in order of first appearance."""
    return [c for c in frame.columns if str(c).startswith(IDENTITY_PREFIX)]


def _metric(value: Any, name: str, path: Path, problems: list[tuple[str, str]]) -> float:
    """A metric as float; null, non-numbers (strings too) and COCOeval's -1 sentinel become NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # a string ("0.31") is not what the trainer writes: something else edited the file
        problems.append((str(path), f"metric {name}={value!r} is not a number: read as missing"))
        return math.nan
    x = float(value)
    if name in COCO_STATS and x < 0:
        # COCOeval's -1 means "no such objects"; averaging it in would be wrong.
        problems.append((str(path), f"metric {name}={value!r} is negative (COCOeval -1?), read as NaN"))
        return math.nan
    return x


def _scalar(v: Any) -> Any:
    """Keep scalars; lists/dicts (unexpected in a flat column) become their JSON text."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return math.nan if v is None else v
    return json.dumps(v, sort_keys=True)


def _parse_value(text: str) -> Any:
    """An override's value as int, float or str, so that axis columns compare as in summary.json."""
    t = text.strip().strip("'\"")
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t


def _axes_from_overrides(path: Path) -> dict[str, Any]:
    """Axis values from Hydra's overrides.yaml ('- model/backbone=convnext_tiny' lines).

    A plain line parser (no yaml import): the file is a flat list of key=value strings.
    The axis name is the last component of the key (model/backbone -> backbone,
    train.hyp.lr0 -> lr0), which is how summary.json names its axes.
    """
    axes: dict[str, Any] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return axes
    for line in lines:
        line = line.strip()
        if not line.startswith("- ") or "=" not in line:
            continue
        item = line[2:].strip().strip("'\"")
        key, _, value = item.partition("=")
        if key.lstrip("+~").startswith(("paths.", "hydra.", "logger")):  # not settings of the study
            continue
        key = key.lstrip("+~").replace(".", "/").split("/")[-1].strip()
        if key:
            axes[key] = _parse_value(value)
    return axes


def read_results_csv(path: Path, required: bool = False) -> tuple[pd.DataFrame | None, list[tuple[str, str]]]:
    """results.csv as a numeric frame; tolerant of padding, truncation and stray text.

    Headers and cells are stripped (official YOLOv5 pads them with %20s). A row whose
    field count differs from the header (a line cut by a kill mid-write) is dropped and
    reported; non-numeric cells become NaN. required: report a missing file as a problem
    (a completed run should have one; a running one may not yet).
    """
    problems: list[tuple[str, str]] = []
    if not path.is_file():
        if required:
            problems.append((str(path), "missing results.csv"))
        return None, problems
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        problems.append((str(path), f"unreadable results.csv: {e}"))
        return None, problems
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        problems.append((str(path), "empty results.csv"))
        return None, problems
    header: list[str] = []
    for c in (c.strip() for c in rows[0]):
        if c in header:
            problems.append((str(path), f"duplicate column {c!r} renamed"))
            n = 1
            while f"{c}#{n}" in header:
                n += 1
            c = f"{c}#{n}"
        header.append(c)
    body = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            problems.append((str(path), f"line {i}: {len(r)} fields, header has {len(header)}; row dropped"))
            continue
        body.append([c.strip() for c in r])
    frame = pd.DataFrame(body, columns=header)
    for c in frame.columns:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    if "epoch" not in frame.columns:
        problems.append((str(path), "no 'epoch' column; using row order"))
        frame.insert(0, "epoch", range(len(frame)))
    return frame, problems


def read_pr_curve(run_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The run's pr_curve.csv (recall, all, one column per class) as numbers, sorted by recall;
    None when the run has none (older runs, runs that did not finish) or it cannot be read."""
    path = Path(run_dir) / "pr_curve.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if not {"recall", "all"} <= set(frame.columns):
        return None
    frame = frame.apply(pd.to_numeric, errors="coerce").dropna(subset=["recall", "all"])
    return frame.sort_values("recall").reset_index(drop=True) if len(frame) else None
