"""Inference on images and videos: YOLOv5's detect.py without Hydra (detect.py) and its media
sources (sources.py); boxes are drawn by yolo_core.plots.draw."""
from .detect import DetectConfig, DetectResult, detect
from .sources import MediaItem, iter_media, list_media

__all__ = ["DetectConfig", "DetectResult", "detect", "MediaItem", "iter_media", "list_media"]
