"""Data: dataset sources, the embedded synthetic set, augmentation and loaders."""
from .records import DatasetSplit, DetectionDataset, ImageRecord
from .coco_ids import coco80_to_coco91_class, coco91_to_coco80_class
from .sources import load_dataset
from .synthetic import ensure_synthetic_dataset
from .dataset import DEFAULT_HYP, YOLODataset, rect_batches
from .image_cache import ImageReadError
from .loader import SeededSampler, build_dataloader

__all__ = ["ImageRecord", "DatasetSplit", "DetectionDataset",
           "coco80_to_coco91_class", "coco91_to_coco80_class", "load_dataset", "ensure_synthetic_dataset",
           "YOLODataset", "DEFAULT_HYP", "rect_batches", "ImageReadError", "build_dataloader", "SeededSampler"]
