"""The official YOLOv5 v7.0 figures measured on this kind of machine (2-core AMD EPYC, CPU,
torch 2.14.1, 2 threads, idle; median of three rounds' medians), and the targets.

They come from the issue that asked for this benchmark; the official code is not run here
(no network, and the point is a fixed yardstick). Ratios against them are only as good as
the similarity of the machines and of their load: RESULTS.md records both.
"""
from __future__ import annotations

# images/s, 640 px, mosaic + full augmentation, batch 16
DATA_PER_WORKER = {"jpeg": 49.0, "ram": 86.0, "disk": 89.0}
DATA_RAM_2_WORKERS = 165.0
DATA_TARGET = 1.5

# train step (fwd + loss + bwd + clip + SGD step), images/s
TRAIN = {("yolov5s", 8, 320): 5.5, ("yolov5s", 4, 640): 1.31}
TRAIN_TARGET = 1.0

EVAL_FORWARD_S = 0.36          # yolov5s eval forward, batch 1, 640 px, s/image
NMS_MS = 210.0                 # conf 0.001, IoU 0.6, multi-label, untrained model, ms/image
NMS_TARGET = 5.0
COCO_TARGET = 5.0              # faster backend vs pycocotools, same run
PEAK_RSS_MB = 2.9e3            # 320 px, batch 16 training run with RAM cache
INDEX_COLD_S = 60.0            # 118k label files, 2 cores: target (no official anchor)
INDEX_CACHED_S = 3.0
STARTUP_S = 10.0               # process start -> first training step, cached dataset: target
