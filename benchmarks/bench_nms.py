"""NMS speed: yolo_core's batched NMS vs the official-style per-image loop (tests/test_nms.py).

Run: .venv/bin/python benchmarks/bench_nms.py [--threads 2] [--repeats 3]

Inputs are the eval-mode outputs of an untrained yolov5s (nc=80) at 640 on random images:
- "official init": the head's bias prior (obj ~ 8 objects per image) leaves almost no
  candidate at conf 0.001, so this measures the fixed cost;
- "no prior": the head biases zeroed (obj ~ cls ~ 0.5), so every anchor and class is a
  candidate at conf 0.001: 25,200 x 80 scores, 30,000 boxes into NMS per image, the
  worst case an untrained or diverged model produces. Its scores take only ~160
  distinct values, so which of several equal-score boxes survives the 30,000 cap and
  NMS is arbitrary (the official argsort is not stable either): "same" (identical
  output) may be False there while "same conf" (identical score lists) holds.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_nms import reference_nms  # noqa: E402

from yolo_core import build_model  # noqa: E402
from yolo_core.eval.nms import non_max_suppression  # noqa: E402


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("yolov5s", 80).eval()
    bmax = max(args.batch)
    imgs = torch.rand(bmax, 3, 640, 640)
    outputs = {}
    with torch.no_grad():
        outputs["official init"] = torch.cat([model(imgs[i:i + 8])[0] for i in range(0, bmax, 8)])
        for conv in model.head.m:
            conv.bias.zero_()
        outputs["no prior"] = torch.cat([model(imgs[i:i + 8])[0] for i in range(0, bmax, 8)])

    print(f"threads={args.threads}  (ms per image, best of {args.repeats})")
    cols = ("conf", 6), ("batch", 5), ("ours", 9), ("loop", 9), ("ratio", 6), ("boxes/img", 9), ("same", 5), \
        ("same conf", 9)
    print(f"{'input':14s} " + " ".join(f"{c:>{w}s}" for c, w in cols))
    for name, y in outputs.items():
        for conf in (0.001, 0.25):
            for bs in args.batch:
                p = y[:bs]
                kw = dict(conf_thres=conf, iou_thres=0.6, multi_label=True, max_det=300)
                ours = non_max_suppression(p, **kw)
                ref = reference_nms(p, **kw)
                same = all(torch.equal(a, b) for a, b in zip(ours, ref))
                same_conf = all(torch.equal(a[:, 4], b[:, 4]) for a, b in zip(ours, ref))
                reps = args.repeats if bs == 1 else max(1, args.repeats // 2)
                t_ours = timed(lambda: non_max_suppression(p, **kw), reps) / bs * 1e3
                t_ref = timed(lambda: reference_nms(p, **kw), reps) / bs * 1e3
                nbox = sum(len(d) for d in ours) / bs
                print(f"{name:14s} {conf:6g} {bs:5d} {t_ours:9.2f} {t_ref:9.2f} {t_ref / t_ours:6.1f} {nbox:9.1f} "
                      f"{str(same):>5s} {str(same_conf):>9s}")


if __name__ == "__main__":
    main()
