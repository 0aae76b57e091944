"""Speed benchmarks of yolo_core against the official YOLOv5 v7.0 figures (`make bench`).

Not tests: nothing here asserts a time. `python -m benchmarks.run` measures, prints a
table (ours, the official anchor, the ratio) and appends it to benchmarks/RESULTS.md;
`benchmarks/gpu.sh` is the one-shot GPU run for a session that has a GPU.
"""
