"""Data: dataset sources, the embedded synthetic set, augmentation and loaders."""
from .records import DatasetSplit, DetectionDataset, ImageRecord

__all__ = ["ImageRecord", "DatasetSplit", "DetectionDataset"]
