"""Detect objects in images and videos with any weights file: YOLOv5's detect.py, without Hydra.

    from yolo_core.infer import DetectConfig, detect
    detect(DetectConfig(weights="best.pt", source="images/"))

As the official: one image at a time, letterboxed to imgsz with the least padding that
keeps the stride (a fixed-shape exported file: padded to its square), NMS at conf 0.25 /
IoU 0.45 / 1000 boxes (single label per box), boxes scaled back to the original pixels.
Writes into out_dir: each image with its boxes drawn (a video: an .mp4 of its frames),
labels/<stem>.txt (save_txt: `class x y w h conf`, normalised to the original image, in
ascending confidence, none for an image without detections; a video's frames as
<stem>_<frame>.txt counted from 1: detect.py's files) and detections.json (every detection of every
file, in original pixels).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.augment import hwc_bgr_to_chw_rgb, letterbox
from ..eval.boxes import scale_boxes
from ..eval.nms import non_max_suppression
from ..models.detector_file import DetectorFile, load_detector
from ..train.atomic import atomic_write_json
from ..train.config import ConfigError
from ..train.trainer import resolve_device
from ..plots.draw import draw_detections
from .sources import MediaItem, iter_media, list_media

LOG = logging.getLogger("yolo_core.detect")


@dataclass
class DetectConfig:
    weights: str = "???"
    source: str = "???"                   # an image or video file, a folder, or a glob ("data/**/*.jpg")
    imgsz: int | None = None              # None: 640 (a fixed-shape exported file: its own)
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    classes: list[int] | None = None      # keep only these class indices
    agnostic_nms: bool = False
    max_det: int = 1000
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    half: bool = False                    # fp16 inference (CUDA only)
    save_img: bool = True                 # the drawn images / videos
    save_txt: bool = False                # labels/<stem>.txt
    save_conf: bool = True                # the confidence as the txt's last column
    out_dir: str = "runs/detect"
    progress: bool = True                 # a tqdm bar over the files (on a terminal)


@dataclass
class DetectResult:
    out_dir: Path
    images: int                           # images and video frames processed
    detections: int
    skipped: dict[str, int] = field(default_factory=dict)
    speed_ms: dict[str, float] = field(default_factory=dict)   # per image: preprocess, inference, nms


def check_config(cfg: DetectConfig) -> None:
    """Refuse bad settings (ConfigError) before anything is loaded or written."""
    problems = []
    if not Path(cfg.weights).is_file():
        problems.append(f"weights={cfg.weights!r}: no such file")
    if cfg.imgsz is not None and (cfg.imgsz < 32 or cfg.imgsz % 32):
        problems.append(f"imgsz={cfg.imgsz} must be a positive multiple of 32 (the max stride)")
    if not 0 <= cfg.conf_thres <= 1:
        problems.append(f"conf_thres={cfg.conf_thres} must be in [0, 1]")
    if not 0 < cfg.iou_thres <= 1:
        problems.append(f"iou_thres={cfg.iou_thres} must be in (0, 1]")
    if cfg.max_det < 1:
        problems.append(f"max_det={cfg.max_det} must be >= 1")
    try:
        list_media(cfg.source)
    except ValueError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("invalid detect config: " + "; ".join(problems))


def _input_size(detector: DetectorFile, cfg: DetectConfig) -> tuple[int, bool]:
    """(imgsz, auto): auto pads only to the stride (rectangles), for graphs that take any size."""
    meta = detector.meta
    if detector.source in ("onnx", "torchscript") and not meta.get("dynamic"):
        if meta["batch_size"] != 1 or (cfg.imgsz is not None and cfg.imgsz != meta["imgsz"]):
            raise ConfigError(f"detect: {cfg.weights} was exported for input (batch {meta['batch_size']}, "
                              f"{meta['imgsz']} px); detect runs one image at a time at that size: export with "
                              f"batch_size=1 (and that imgsz), or dynamic=true")
        return int(meta["imgsz"]), False
    return cfg.imgsz or 640, True


def _check_classes(cfg: DetectConfig, names: list[str]) -> None:
    bad = [c for c in cfg.classes or [] if not 0 <= int(c) < len(names)]
    if bad:
        raise ConfigError(f"detect: classes={bad} are not class indices of {cfg.weights} (0..{len(names) - 1})")


class _Outputs:
    """The files of one detect run: drawn images, videos, label txts, detections.json."""

    def __init__(self, cfg: DetectConfig, names: list[str]) -> None:
        self.cfg, self.names = cfg, names
        self.dir = Path(cfg.out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if cfg.save_txt:
            (self.dir / "labels").mkdir(exist_ok=True)
        self.records: list[dict[str, Any]] = []
        self.videos: dict[Path, cv2.VideoWriter] = {}

    def add(self, item: MediaItem, det: np.ndarray) -> None:
        h, w = item.image.shape[:2]
        stem = item.path.stem if not item.is_video else f"{item.path.stem}_{item.frame + 1}"  # detect.py counts from 1
        self.records.append({"file": str(item.path), "frame": item.frame, "width": w, "height": h, "detections": [
            {"class_id": int(c), "class": self.names[int(c)], "confidence": round(float(s), 5),
             "xyxy": [round(float(v), 2) for v in box]} for *box, s, c in det.tolist()]})
        if self.cfg.save_txt and len(det):  # as detect.py: no file for an image without detections
            self._write_txt(self.dir / "labels" / f"{stem}.txt", det, w, h)
        if self.cfg.save_img:
            drawn = draw_detections(item.image, det[:, :4], det[:, 5], self.names, det[:, 4])
            if item.is_video:
                self._video(item, w, h).write(drawn)
            elif not cv2.imwrite(str(self.dir / item.path.name), drawn):
                raise OSError(f"could not write {self.dir / item.path.name}")

    def _write_txt(self, path: Path, det: np.ndarray, w: int, h: int) -> None:
        lines = []
        for x1, y1, x2, y2, conf, c in det[::-1].tolist():  # detect.py's order: ascending confidence
            row = [int(c), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
            if self.cfg.save_conf:
                row.append(conf)
            lines.append(" ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row))
        path.write_text("".join(f"{ln}\n" for ln in lines))

    def _video(self, item: MediaItem, w: int, h: int) -> cv2.VideoWriter:
        if item.path not in self.videos:
            out = self.dir / f"{item.path.stem}.mp4"
            self.videos[item.path] = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), item.fps or 30.0,
                                                     (w, h))
        return self.videos[item.path]

    def close(self) -> None:
        for writer in self.videos.values():
            writer.release()
        atomic_write_json(self.records, self.dir / "detections.json")


@torch.no_grad()
def detect(cfg: DetectConfig) -> DetectResult:
    """Run cfg.weights on cfg.source; write the outputs into cfg.out_dir (module docstring)."""
    check_config(cfg)
    device = resolve_device(cfg.device)
    detector = load_detector(cfg.weights, device)
    _check_classes(cfg, detector.names)
    imgsz, auto = _input_size(detector, cfg)
    half = cfg.half and device.type == "cuda"
    model = detector.model
    if isinstance(model, torch.nn.Module):
        model = model.to(device).half() if half else model.to(device)
    files = list_media(cfg.source)
    outputs = _Outputs(cfg, detector.names)
    skipped: dict[str, int] = {}
    times = {"preprocess": 0.0, "inference": 0.0, "nms": 0.0}
    n_images = n_det = 0
    try:
        for f in tqdm(files, desc="detect", unit="file", disable=None if cfg.progress else True):  # a terminal only
            for item in iter_media([f], skipped):
                t0 = time.perf_counter()
                im, _, _ = letterbox(item.image, imgsz, auto=auto, stride=32)
                x = torch.from_numpy(hwc_bgr_to_chw_rgb(im)).to(device)[None]
                x = (x.half() if half else x.float()) / 255
                t1 = time.perf_counter()
                pred = model(x)
                t2 = time.perf_counter()
                det = non_max_suppression(pred, cfg.conf_thres, cfg.iou_thres, classes=cfg.classes,
                                          agnostic=cfg.agnostic_nms, max_det=cfg.max_det)[0]
                det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], item.image.shape[:2]).round()  # as detect.py
                t3 = time.perf_counter()
                for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                    times[k] += dt
                outputs.add(item, det.cpu().numpy())
                n_images += 1
                n_det += len(det)
    finally:
        outputs.close()
    if skipped:
        LOG.warning("skipped %d of %d files that could not be decoded (named above)", skipped.get("corrupt", 0),
                    len(files))
    speed = {k: 1e3 * v / max(n_images, 1) for k, v in times.items()}
    return DetectResult(outputs.dir, n_images, n_det, skipped, speed)
