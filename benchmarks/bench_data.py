"""Data pipeline: images/s of the training YOLODataset (mosaic, perspective, HSV, flip) at 640.

Measured through build_dataloader exactly as the trainer builds it (batch 16, shuffled,
seeded), from JPEG, RAM cache and disk cache, in process (workers=0: one core's worth,
cv2's own threads off as the official code turns them off) and with 2 workers. Each
round iterates `batches` batches; the figure is the median over rounds (worker start-up
is excluded by a warm-up round on persistent workers). 5 rounds; the best is in the note.
"""
from __future__ import annotations

import time

from .common import Row, median, section_args, peak_rss_mb, set_threads, write_rows
from . import anchors, datagen


def measure(data_yaml: str, cache: str | None, workers: int, batches: int, rounds: int, imgsz: int = 640,
            batch_size: int = 16) -> tuple[float, list[float]]:
    import cv2

    from yolo_core.data import YOLODataset, build_dataloader, load_dataset

    cv2.setNumThreads(0)
    ds = load_dataset(data_yaml)
    train = YOLODataset(ds.train, imgsz, augment=True, batch_size=batch_size, cache=cache, seed=0)
    loader = build_dataloader(train, batch_size, shuffle=True, workers=workers, seed=0)

    def one_round() -> float:
        n, it = 0, iter(loader)
        t = time.perf_counter()
        for i, (imgs, *_rest) in enumerate(it):
            n += imgs.shape[0]
            if i + 1 >= batches:
                break
        s = time.perf_counter() - t
        del it
        return n / s

    one_round()  # warm-up: workers start, page cache, allocator
    vals = [one_round() for _ in range(rounds)]
    return median(vals), vals


def main() -> None:
    args = section_args()
    set_threads(1)  # the loader's work is cv2/numpy; torch only collates
    from pathlib import Path

    data_yaml = str(datagen.jpeg_set(Path(args.cache_dir) if args.cache_dir else None))
    batches, rounds = (2, 1) if args.quick else (8, 5)
    imgsz = 320 if args.quick else 640
    rows = []
    for cache, label in ((None, "jpeg"), ("ram", "ram"), ("disk", "disk")):
        for workers in (0, 2):
            v, vals = measure(data_yaml, cache, workers, batches * (2 if workers else 1), rounds, imgsz)
            if args.quick:  # other sizes than the anchors': no ratio
                anchor, target = None, None
            elif workers == 0:
                anchor, target = anchors.DATA_PER_WORKER[label], anchors.DATA_TARGET
            elif label == "ram":
                anchor, target = anchors.DATA_RAM_2_WORKERS, None
            else:
                anchor, target = None, None
            rows.append(Row("data", f"pipeline {imgsz}px {label}, {'in process' if not workers else '2 workers'}",
                            round(v, 1), "img/s", anchor, True, target,
                            note=f"median of {len(vals)} rounds; best {max(vals):.1f} img/s",
                            extra={"rounds": [round(x, 1) for x in vals]}))
    rows.append(Row("data", "peak RSS of the data section", round(peak_rss_mb()), "MB", None, False))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
