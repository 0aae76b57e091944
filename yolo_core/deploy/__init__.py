"""Exported detectors: ONNX and TorchScript files written from any weights file, checked
against PyTorch, and loaded back as callables that evaluate() and val take."""
from .export import EXPORT_FORMATS, ExportConfig, ExportResult, export
from .runtime import ExportedDetector, load_exported

__all__ = ["EXPORT_FORMATS", "ExportConfig", "ExportResult", "export", "ExportedDetector", "load_exported"]
