"""Evaluation: NMS ms/image and COCO evaluation seconds.

NMS: the eval-mode outputs of an untrained yolov5s
(nc=80, 25,200 boxes per 640x640 image) on letterboxed images of the generated JPEG set,
through yolo_core's batched NMS and through the official-style per-image loop of
tests/test_nms.py (without the official time limit, which would skip images). Two inputs:
"official init" (the head's bias prior, what an untrained model gives) and "no prior"
(head biases zeroed: every anchor and class is a candidate at conf 0.001, 30,000 boxes per
image into NMS, the worst case of an untrained or diverged model).

COCO: coco_evaluate (what the trainer calls) on 5,000 generated images with ~20 boxes each
and ~40 detections each (jittered true boxes with scores, plus false positives), with
pycocotools and with faster-coco-eval; the 12 stats must be identical.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from . import anchors, datagen
from .common import Row, median, section_args, peak_rss_mb, set_threads, write_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def nms_inputs(n: int, imgsz: int, cache_dir: Path | None):
    """(official init outputs, no-prior outputs) of an untrained yolov5s on n letterboxed images."""
    import torch

    from yolo_core import build_model
    from yolo_core.data import YOLODataset, load_dataset

    ds = load_dataset(datagen.jpeg_set(cache_dir))
    val = YOLODataset(ds.val, imgsz, augment=False, batch_size=n)
    imgs = torch.stack([val[i][0] for i in range(n)]).float() / 255
    torch.manual_seed(0)
    model = build_model("yolov5s", 80).eval()
    with torch.no_grad():
        official = torch.cat([model(imgs[i:i + 8])[0] for i in range(0, n, 8)])
        for conv in model.head.m:
            conv.bias.zero_()
        no_prior = torch.cat([model(imgs[i:i + 8])[0] for i in range(0, n, 8)])
    return {"official init": official, "no prior": no_prior}


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def bench_nms(quick: bool, cache_dir: Path | None) -> list[Row]:
    import torch
    from test_nms import reference_nms

    from yolo_core.eval.nms import non_max_suppression

    bmax = 4 if quick else 32
    inputs = nms_inputs(bmax, 640, cache_dir)
    rows = []
    for name, y in inputs.items():
        for conf in (0.001, 0.25):
            kw = dict(conf_thres=conf, iou_thres=0.6, multi_label=True, max_det=300)
            ref1 = reference_nms(y[:1], **kw)
            ours1 = non_max_suppression(y[:1], **kw)
            same_conf = all(torch.equal(a[:, 4], b[:, 4]) for a, b in zip(ours1, ref1))
            t_ref = timed(lambda: reference_nms(y[:1], **kw), 1 if quick else 3) * 1e3
            for bs in (1, bmax):
                p = y[:bs]
                out = non_max_suppression(p, **kw)
                t = timed(lambda: non_max_suppression(p, **kw), 1 if quick else 3) / bs * 1e3
                anchor = anchors.NMS_MS if (conf == 0.001 and name == "official init") else None
                rows.append(Row("eval", f"NMS conf {conf} {name}, batch {bs}", round(t, 2), "ms/img", anchor,
                                False, anchors.NMS_TARGET if anchor else None,
                                note=f"official-style loop here: {t_ref:.1f} ms/img ({t_ref / t:.1f}x); "
                                     f"{sum(len(d) for d in out) / bs:.0f} boxes/img; 0 images skipped; "
                                     f"same scores as the loop: {same_conf}",
                                extra={"loop_ms": round(t_ref, 2), "images": bs, "images_out": len(out)}))
    return rows


def coco_case(n_images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO gt dict (~20 boxes per image, 80 categories, all three area buckets) and
    detections: each true box found with probability 0.8 (jittered, score ~ U(0.3, 1)),
    plus ~24 false positives per image (score ~ U(0, 0.5))."""
    import numpy as np

    from yolo_core.data.coco_ids import coco80_to_coco91_class

    rng = np.random.default_rng(seed)
    cats = coco80_to_coco91_class()
    images, anns, dets = [], [], []
    for iid in range(1, n_images + 1):
        w, h = 640, 480
        images.append({"id": iid, "width": w, "height": h, "file_name": f"{iid:012d}.jpg"})
        k = int(rng.integers(10, 31))
        bw = np.exp(rng.uniform(np.log(8), np.log(300), k))
        bh = bw * rng.uniform(0.5, 2.0, k)
        bh = np.minimum(bh, h - 1)
        x = rng.uniform(0, w - np.minimum(bw, w - 1))
        y = rng.uniform(0, h - bh)
        c = rng.integers(0, 80, k)
        for j in range(k):
            box = [float(x[j]), float(y[j]), float(min(bw[j], w - x[j])), float(bh[j])]
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cats[c[j]], "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
            if rng.random() < 0.8:
                jit = rng.normal(0, 0.08, 4) * [box[2], box[3], box[2], box[3]]
                dets.append({"image_id": iid, "category_id": cats[c[j]],
                             "bbox": [round(float(v), 3) for v in np.array(box) + jit],
                             "score": round(float(rng.uniform(0.3, 1.0)), 5)})
        for _ in range(int(rng.integers(12, 37))):
            bw_, bh_ = rng.uniform(5, 200, 2)
            dets.append({"image_id": iid, "category_id": cats[int(rng.integers(0, 80))],
                         "bbox": [round(float(rng.uniform(0, w - bw_)), 3), round(float(rng.uniform(0, h - bh_)), 3),
                                  round(float(bw_), 3), round(float(bh_), 3)],
                         "score": round(float(rng.uniform(0.0, 0.5)), 5)})
    categories = [{"id": cid, "name": f"class{i}"} for i, cid in enumerate(cats)]
    return {"images": images, "annotations": anns, "categories": categories}, dets


def bench_coco(quick: bool) -> list[Row]:
    from yolo_core.eval.coco import coco_evaluate

    n = 200 if quick else 5000
    gt, dets = coco_case(n)
    img_ids = [im["id"] for im in gt["images"]]
    results, times = {}, {}
    for backend, reps in (("pycocotools", 1), ("faster_coco_eval", 1 if quick else 3)):
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            results[backend] = coco_evaluate(gt, dets, img_ids=img_ids, backend=backend)
            ts.append(time.perf_counter() - t)
        times[backend] = median(ts)
    same = results["pycocotools"] == results["faster_coco_eval"]
    diff = max(abs(results["pycocotools"][k] - results["faster_coco_eval"][k]) for k in results["pycocotools"])
    ratio = times["pycocotools"] / times["faster_coco_eval"]
    note = (f"{len(dets)} detections, {len(gt['annotations'])} boxes; stats identical: {same} "
            f"(max |diff| {diff:.2g}); mAP {results['faster_coco_eval']['map']:.4f}")
    return [
        Row("eval", f"COCO eval {n} images, pycocotools", round(times["pycocotools"], 2), "s", None, False, None,
            note=note),
        Row("eval", f"COCO eval {n} images, faster_coco_eval", round(times["faster_coco_eval"], 2), "s",
            round(times["pycocotools"], 2), False, anchors.COCO_TARGET,
            note=f"anchor = pycocotools in this run ({ratio:.1f}x); stats identical: {same}",
            extra={"stats_identical": same, "max_abs_diff": diff}),
    ]


def main() -> None:
    args = section_args()
    set_threads(2)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    rows = bench_nms(args.quick, cache_dir) + bench_coco(args.quick)
    rows.append(Row("eval", "peak RSS of the eval section", round(peak_rss_mb()), "MB", None, False))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
