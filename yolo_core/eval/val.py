"""Evaluate a weights file on a dataset split: YOLOv5's val.py, without Hydra.

    from yolo_core.eval.val import ValConfig, val
    result = val(ValConfig(weights="runs/train/exp/checkpoints/best.pt"))

Weights inside a run directory (<run>/checkpoints/*.pt beside <run>/summary.json) are
evaluated, by default, as that run's final evaluation did: its dataset and split, imgsz,
validation batch (rect batches depend on it), conf, IoU and max_det; so best.pt gives the
metrics summary.json holds. Any setting given explicitly wins; without a run, val.py's
defaults apply (imgsz 640, batch 32, conf 0.001, IoU 0.6, 300 boxes). metrics.json says
which setting came from where.

The model's class names must equal the dataset's, in order: a model trained on other
classes scored against these labels gives a number that means nothing, so that is a
ConfigError, not a warning.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data.loader import build_dataloader
from ..data.dataset import YOLODataset
from ..data.records import DetectionDataset
from ..data.sources import load_dataset
from ..data.synthetic import ensure_synthetic_dataset, synthetic_params
from ..models.detector_file import DetectorFile, load_detector
from ..plots import EvalPlots, write_eval_plots
from ..train.atomic import atomic_write_json, atomic_write_text
from ..train.config import ConfigError, TrainConfig
from ..train.trainer import resolve_device
from ..train.identity import dataset_digest, file_digest
from ..train.run_files import SUMMARY_METRICS, clean_metric
from .coco import BACKENDS
from .evaluator import EvalResult, evaluate
from .tables import format_coco, format_table, per_class_rows

LOG = logging.getLogger("yolo_core.val")

# val.py's own defaults, for weights that are not in a run directory
VAL_DEFAULTS: dict[str, Any] = {"imgsz": 640, "batch_size": 32, "conf_thres": 0.001, "iou_thres": 0.6,
                                "max_det": 300, "coco_backend": "pycocotools"}
METRIC_DEFINITIONS = {
    "map, map50, map75, map_small/medium/large, ar*": "COCO's (pycocotools COCOeval, 101-point interpolation, "
                                                        "greedy matching by score)",
    "map50_yolo, map_yolo, precision, recall": "YOLOv5's (val.py's ap_per_class: matching by IoU, "
                                               "P and R at the best mean F1)",
}


@dataclass
class ValConfig:
    """None: the run's own setting when the weights are in a run directory, else VAL_DEFAULTS."""

    weights: str = "???"
    data: str | None = None                 # a dataset yaml or "synthetic"
    synthetic: dict[str, Any] | None = None  # the embedded set's parameters (data=synthetic)
    split: str = "val"                      # val | train
    imgsz: int | None = None
    batch_size: int | None = None
    conf_thres: float | None = None
    iou_thres: float | None = None
    max_det: int | None = None
    coco_backend: str | None = None
    half: bool = False                      # fp16 inference (CUDA only, as val.py)
    device: str = "auto"                    # auto | cpu | cuda | cuda:N
    workers: int = 4
    out_dir: str = "runs/val"
    verbose: bool = True                    # print val.py's table and the COCO stats
    plots: bool = True                      # confusion matrix, PR/F1/P/R curves, val_batch0 mosaics


@dataclass
class ValResult:
    """metrics: summary.json's keys plus map50_yolo and map_yolo; per_class: rows of
    per_class.csv; settings: what was used; from_run: which of them came from the run."""

    metrics: dict[str, float | None]
    per_class: list[dict[str, Any]]
    settings: dict[str, Any]
    from_run: list[str]
    speed_ms: dict[str, float]
    out_dir: Path
    evaluation: EvalResult = field(repr=False)


def run_directory(weights: str | os.PathLike) -> Path | None:
    """The run directory a checkpoint belongs to (<run>/checkpoints/x.pt with <run>/summary.json)."""
    p = Path(weights).resolve()
    run = p.parent.parent
    return run if p.parent.name == "checkpoints" and (run / "summary.json").is_file() else None


def run_settings(run: Path) -> dict[str, Any]:
    """The settings of a run's final evaluation, from its summary.json."""
    summary = json.loads((run / "summary.json").read_text())
    identity = (summary.get("identity") or {}).get("config") or {}
    final = summary.get("final_eval") or {}
    out: dict[str, Any] = {}
    if summary.get("data_source"):
        out["data"] = summary["data_source"]
        if out["data"] == "synthetic":
            out["synthetic"] = identity.get("synthetic") or {}
    if "imgsz" in identity:
        out["imgsz"] = identity["imgsz"]
    if "batch_size" in identity:
        rule = TrainConfig(batch_size=identity["batch_size"], val_batch_size=identity.get("val_batch_size"))
        out["batch_size"] = rule.val_batch(int(identity.get("world_size") or 1))  # the trainer's own rule
    for key, src in (("conf_thres", final.get("conf_thres", identity.get("conf_thres"))),
                     ("iou_thres", final.get("iou_thres")), ("max_det", identity.get("max_det")),
                     ("coco_backend", identity.get("coco_backend"))):
        if src is not None:
            out[key] = src
    out["_data_digest"] = (identity.get("data") or {}).get("digest")
    out["_max_image_pixels"] = identity.get("max_image_pixels", 89_478_485)
    return out


def resolve_settings(cfg: ValConfig) -> tuple[dict[str, Any], list[str], Path | None]:
    """(settings, the names taken from the run, the run directory or None)."""
    if not Path(cfg.weights).is_file():
        raise ConfigError(f"invalid val config: weights={cfg.weights!r}: no such file")
    run = run_directory(cfg.weights)
    from_the_run = run_settings(run) if run else {}
    settings: dict[str, Any] = {}
    taken = []
    for key in ("data", "synthetic", "imgsz", "batch_size", "conf_thres", "iou_thres", "max_det", "coco_backend"):
        given = getattr(cfg, key)
        if given is not None:
            settings[key] = given
        elif key in from_the_run and (key != "synthetic" or cfg.data in (None, "synthetic")):
            settings[key] = from_the_run[key]
            taken.append(key)
        elif key in VAL_DEFAULTS:
            settings[key] = VAL_DEFAULTS[key]
    if settings.get("data") is None:
        raise ConfigError(f"val: data is not set and {cfg.weights} is not in a run directory that records its "
                          f"dataset: give data=<dataset yaml> (or data=synthetic)")
    if settings["data"] == "synthetic":
        settings["synthetic"] = synthetic_params(settings.get("synthetic") or {})
    else:
        settings.pop("synthetic", None)
    settings.update(split=cfg.split, half=cfg.half, device=cfg.device)
    if "data" in taken and settings["data"] != "synthetic" and not Path(settings["data"]).is_file():
        raise ConfigError(f"val: the dataset of the run {run}, {settings['data']!r} (summary.json's data_source), "
                          f"is not there any more: give data=<dataset yaml>")
    _check(settings)
    settings["_run_data_digest"] = from_the_run.get("_data_digest") if "data" in taken else None
    settings["_max_image_pixels"] = from_the_run.get("_max_image_pixels", 89_478_485)
    return settings, taken, run


def _check(s: dict[str, Any]) -> None:
    problems = []
    if s["imgsz"] < 32 or s["imgsz"] % 32:
        problems.append(f"imgsz={s['imgsz']} must be a positive multiple of 32 (the max stride)")
    if s["batch_size"] < 1:
        problems.append(f"batch_size={s['batch_size']} must be >= 1")
    if not 0 <= s["conf_thres"] < 1:
        problems.append(f"conf_thres={s['conf_thres']} must be in [0, 1)")
    if not 0 < s["iou_thres"] <= 1:
        problems.append(f"iou_thres={s['iou_thres']} must be in (0, 1]")
    if s["max_det"] < 1:
        problems.append(f"max_det={s['max_det']} must be >= 1")
    if s["split"] not in ("val", "train"):
        problems.append(f"split={s['split']!r} must be val or train")
    if s["coco_backend"] not in BACKENDS:
        problems.append(f"coco_backend={s['coco_backend']!r} must be one of {', '.join(BACKENDS)}")
    if s["data"] != "synthetic" and not Path(s["data"]).is_file():
        problems.append(f"data={s['data']!r}: no such dataset yaml")
    if problems:
        raise ConfigError("invalid val config: " + "; ".join(problems))


def check_names(detector: DetectorFile, data: DetectionDataset, weights: str) -> None:
    """Refuse a model whose classes are not the dataset's (see the module docstring)."""
    if detector.names == list(data.names):
        return
    first = next((i for i, (a, b) in enumerate(zip(detector.names, data.names)) if a != b),
                 min(len(detector.names), len(data.names)))
    raise ConfigError(f"val: {weights} was trained on {detector.nc} classes that are not this dataset's "
                      f"{data.nc} ({data.name}): they differ first at class {first} "
                      f"(model {detector.names[first] if first < detector.nc else None!r}, dataset "
                      f"{data.names[first] if first < data.nc else None!r}); evaluate it on its own dataset")


def _fixed_input(detector: DetectorFile, settings: dict[str, Any], taken: list[str], cfg: ValConfig) -> bool:
    """Whether rect batches can be used: not for an exported file of a fixed input shape,
    whose imgsz and batch the settings then take (an imgsz given that is not the file's
    is refused). Returns rect."""
    meta = detector.meta
    if detector.source not in ("onnx", "torchscript") or meta.get("dynamic"):
        return True
    if cfg.imgsz is not None and cfg.imgsz != meta["imgsz"]:
        raise ConfigError(f"val: {cfg.weights} was exported for imgsz={meta['imgsz']} (dynamic=false), "
                          f"not imgsz={cfg.imgsz}; export it with dynamic=true for other sizes")
    settings["imgsz"], settings["batch_size"] = meta["imgsz"], meta["batch_size"]
    taken[:] = [k for k in taken if k not in ("imgsz", "batch_size")]
    return False


def _padded(loader, batch_size: int):
    """Batches of exactly batch_size for a fixed-shape graph: the last one padded with blank
    images, whose detections evaluate() drops (it pairs detections with the batch's indices)."""
    for imgs, targets, indices, shapes in loader:
        n = imgs.shape[0]
        if n < batch_size:
            imgs = torch.cat((imgs, imgs.new_zeros((batch_size - n, *imgs.shape[1:]))))
        yield imgs, targets, indices, shapes


def _write_per_class(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    atomic_write_text(buf.getvalue(), path)


def val(cfg: ValConfig) -> ValResult:
    """Evaluate cfg.weights; write metrics.json, per_class.csv and predictions.json into
    cfg.out_dir; return the numbers (see ValResult)."""
    settings, taken, run = resolve_settings(cfg)
    device = resolve_device(cfg.device)
    detector = load_detector(cfg.weights, device)
    rect = _fixed_input(detector, settings, taken, cfg)
    spec = ensure_synthetic_dataset(**settings["synthetic"]) if settings["data"] == "synthetic" else settings["data"]
    data = load_dataset(spec, max_image_pixels=settings["_max_image_pixels"])
    check_names(detector, data, cfg.weights)
    notes = []
    digest = dataset_digest(data)
    if settings["_run_data_digest"] and digest != settings["_run_data_digest"]:
        notes.append(f"the dataset changed since the run was trained (digest {digest}, the run's "
                     f"{settings['_run_data_digest']}): the metrics are not the run's")
        LOG.warning(notes[-1])
    if not rect:
        notes.append(f"{cfg.weights} has a fixed input shape: square {settings['imgsz']} px letterboxes in batches "
                     f"of {settings['batch_size']} (not rect batches), so the metrics can differ slightly from "
                     f"the checkpoint's; export with dynamic=true to evaluate as the checkpoint")
        LOG.warning(notes[-1])
    split = data.val if cfg.split == "val" else data.train
    bs = settings["batch_size"]
    dataset = YOLODataset(split, settings["imgsz"], augment=False, rect=rect, pad=0.5, batch_size=bs)
    split = replace(split, records=dataset.records)  # rect batches reorder the records
    loader = build_dataloader(dataset, bs, shuffle=False, workers=min(cfg.workers, bs, os.cpu_count() or 1))
    model = detector.model.to(device) if isinstance(detector.model, torch.nn.Module) else detector.model
    plots = EvalPlots(detector.nc) if cfg.plots else None
    result = evaluate(model, _padded(loader, bs) if not rect else loader, split, conf_thres=settings["conf_thres"],
                      iou_thres=settings["iou_thres"], max_det=settings["max_det"], device=device,
                      half=cfg.half, coco_backend=settings["coco_backend"], plots=plots, progress="val")
    if split.skipped:  # at loading, and undecodable images found during the pass (scored as blank)
        notes.append(f"{split.name} split: skipped {split.skipped}")
        LOG.warning(notes[-1])

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {k: clean_metric(result.metrics.get(k)) for k in (*SUMMARY_METRICS, "map50_yolo", "map_yolo")}
    rows = per_class_rows(result, split, detector.names)
    public = {k: v for k, v in settings.items() if not k.startswith("_")}
    atomic_write_json(result.predictions, out / "predictions.json")
    _write_per_class(rows, out / "per_class.csv")
    if plots is not None:
        write_eval_plots(plots, result.per_class, detector.names, out)
    atomic_write_json({
        "metrics": metrics, "metric_definitions": METRIC_DEFINITIONS,
        "weights": {"path": str(Path(cfg.weights).resolve()), **file_digest(cfg.weights), "source": detector.source,
                    "model": detector.model_name, "model_kwargs": detector.model_kwargs, **detector.meta},
        "run_dir": str(run) if run else None, "settings": public, "settings_from_run": taken,
        "data": {"name": data.name, "split": split.name, "images": result.n_images,
                 "digest": digest, "skipped": split.skipped},
        "speed_ms_per_image": {k: round(v, 3) for k, v in result.speed_ms.items()},
        "device": str(device), "n_predictions": len(result.predictions), "notes": notes,
    }, out / "metrics.json")
    if cfg.verbose:
        print(format_table(rows))
        print(format_coco(metrics, settings["coco_backend"]))
        sp = result.speed_ms
        print(f"Speed: {sp['preprocess']:.1f}ms pre-process, {sp['inference']:.1f}ms inference, {sp['nms']:.1f}ms NMS "
              f"per image at shape ({bs}, 3, {settings['imgsz']}, {settings['imgsz']})")
        if taken:
            shown = [f"{k}={public[k]}" for k in taken if k in public and k != "synthetic"]
            print(f"Settings of the run {run}: {', '.join(shown)}")
        print(f"Results saved to {out}")
    return ValResult(metrics, rows, public, taken, result.speed_ms, out, result)
