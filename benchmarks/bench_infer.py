"""Inference section: images/s of `make detect`'s pipeline, PyTorch vs ONNX Runtime.

The pipeline is detect's own functions in its order: decode (cv2.imread of a 640x480
JPEG), letterbox, forward, NMS (conf 0.25, IoU 0.45), boxes scaled back, drawing
(supervision). Batch 1 is detect itself (letterbox to the stride); batch 32 stacks 32
square 640 letterboxes (what a batched deployment does). Both backbones, random weights
(speed does not depend on them), nc 80; the ONNX file is exported with dynamic axes by
yolo_core.deploy and deleted afterwards. Each figure is the median over rounds after one
warm-up round; the ONNX rows' anchor is the PyTorch figure of the same run (ratio > 1:
ONNX Runtime faster; the issue's target at batch 1: >= 1.2x).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from .common import Row, median, peak_rss_mb, section_args, set_threads, write_rows

ONNX_TARGET = 1.2


def _images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        im = rng.integers(60, 200, (480, 640, 3), dtype=np.uint8)
        for _ in range(12):
            x, y, s = int(rng.integers(0, 560)), int(rng.integers(0, 400)), int(rng.integers(10, 80))
            cv2.rectangle(im, (x, y), (x + s, y + s), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        p = folder / f"{i:03d}.jpg"
        cv2.imwrite(str(p), im)
        paths.append(p)
    return paths


def _pipeline(model, paths: list[Path], batch: int, names: list[str]) -> float:
    """Seconds for decode -> letterbox -> forward -> NMS -> scale -> draw over `paths`."""
    import torch

    from yolo_core.data.augment import hwc_bgr_to_chw_rgb, letterbox
    from yolo_core.eval.boxes import scale_boxes
    from yolo_core.eval.nms import non_max_suppression
    from yolo_core.plots.draw import draw_detections

    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            originals = [cv2.imread(str(p)) for p in paths[i:i + batch]]
            inputs = [letterbox(im, 640, auto=batch == 1, stride=32)[0] for im in originals]
            x = torch.from_numpy(np.stack([hwc_bgr_to_chw_rgb(im) for im in inputs])).float() / 255
            dets = non_max_suppression(model(x), 0.25, 0.45, max_det=1000)
            for im, det in zip(originals, dets):
                det[:, :4] = scale_boxes(x.shape[2:], det[:, :4], im.shape[:2]).round()
                d = det.numpy()
                draw_detections(im, d[:, :4], d[:, 5], names, d[:, 4])
    return time.perf_counter() - t0


def bench(quick: bool) -> list[Row]:
    import torch

    from yolo_core.deploy import ExportConfig, export
    from yolo_core.models import build_model
    from yolo_core.models.detector_file import load_detector

    names = [str(i) for i in range(80)]
    rows = []
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = _images(tmp, 4 if quick else 32)
        for name, kwargs in (("yolov5s", {}), ("convnext_tiny", {"neck": "yolov5s"})):
            torch.manual_seed(0)
            weights = tmp / f"{name}.pt"
            model = build_model(name, nc=80, **kwargs).eval()
            torch.save({"model": model.state_dict(), "model_name": name, "model_kwargs": kwargs, "nc": 80,
                        "names": names}, weights)
            onnx_file = export(ExportConfig(weights=str(weights), imgsz=640, dynamic=True)).path
            runtimes = {"PyTorch": load_detector(weights).model, "ONNX Runtime": load_detector(onnx_file).model}
            for batch in (1, 4 if quick else 32):
                images = paths[:8 if not quick and batch == 1 else len(paths)]
                per_img = {}
                for runtime, m in runtimes.items():
                    _pipeline(m, images[:batch], batch, names)  # warm-up
                    seconds = median([_pipeline(m, images, batch, names) for _ in range(rounds)])
                    per_img[runtime] = len(images) / seconds
                torch_ips = per_img["PyTorch"]
                rows.append(Row("infer", f"{name} detect pipeline b{batch}@640, PyTorch", round(torch_ips, 3),
                                "img/s", note=f"{len(images)} images x {rounds} rounds (median)"))
                rows.append(Row("infer", f"{name} detect pipeline b{batch}@640, ONNX Runtime",
                                round(per_img["ONNX Runtime"], 3), "img/s", round(torch_ips, 3), True,
                                ONNX_TARGET if batch == 1 else None,
                                note="anchor = PyTorch in this run"))
            onnx_file.unlink()
            weights.unlink()
    return rows


def main() -> None:
    args = section_args()
    set_threads(2)
    rows = bench(args.quick)
    rows.append(Row("infer", "peak RSS of the infer section", round(peak_rss_mb()), "MB", None, False))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
