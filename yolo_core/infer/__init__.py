"""Inference on images and videos: YOLOv5's detect.py without Hydra (detect.py), its media
sources (sources.py) and the drawing of boxes (draw.py, through supervision)."""
from .detect import DetectConfig, DetectResult, detect
from .sources import MediaItem, iter_media, list_media

__all__ = ["DetectConfig", "DetectResult", "detect", "MediaItem", "iter_media", "list_media"]
