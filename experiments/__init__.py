"""Hydra entry points and cluster glue; adapts configs to yolo_core."""
