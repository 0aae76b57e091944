"""The study's statistics on cases whose answer is known: the paired image bootstrap
(identical predictions: delta 0 exactly; a clearly better model: an interval above 0),
density bins with known counts, crowding values and AP worked out by hand, the
non-inferiority decision, and report.py's verdict from hand-made run directories."""
from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from analysis import subsets
from analysis.bootstrap import BootstrapDelta, paired_bootstrap
from analysis.image_eval import accumulate, coco_eval, from_cocoeval, mean_ap
from analysis.report import build_report
from analysis.verdict import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, decide
from test_image_eval import random_case
from test_report_identity import run as identity_run


def evaluations(gt, dets):
    return from_cocoeval(coco_eval(gt, dets))


def perfect(gt: dict, score: float = 0.9) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": score}
            for a in gt["annotations"] if not a.get("iscrowd")]


def test_identical_predictions_give_delta_zero_in_every_resample():
    gt, dets = random_case(1)
    a, b = evaluations(gt, dets), evaluations(gt, dets)
    res = paired_bootstrap([a], [b], {"map": mean_ap}, n_resamples=200)
    assert res["map"].observed == 0.0
    assert res["map"].interval() == (0.0, 0.0)


def test_a_clearly_better_model_has_an_interval_above_zero():
    gt, dets = random_case(2, n_img=80, crowd=0.0)
    worse, better = evaluations(gt, dets), evaluations(gt, perfect(gt) + dets)
    res = paired_bootstrap([worse], [better], {"map": mean_ap}, n_resamples=300)
    lo, hi = res["map"].interval()
    assert 0 < lo < res["map"].observed < hi
    # the same two models swapped: the interval is the mirror image
    back = paired_bootstrap([better], [worse], {"map": mean_ap}, n_resamples=300)["map"]
    assert np.allclose(back.resampled, -res["map"].resampled)


def test_a_masked_bootstrap_draws_only_the_masked_images():
    gt, dets = random_case(4)
    ev = evaluations(gt, dets)
    mask = np.zeros(ev.n_images, dtype=np.int64)
    mask[:10] = 1
    res = paired_bootstrap([ev], [evaluations(gt, perfect(gt) + dets)], {"map": mean_ap}, 50, mask=mask)["map"]
    full = mean_ap(accumulate(evaluations(gt, perfect(gt) + dets), mask[None]))[0] - mean_ap(accumulate(ev, mask[None]))[0]
    assert res.observed == pytest.approx(full)


def density_case() -> dict:
    """Images holding 0, 1, 3, 7, 15 and 25 objects (and a crowd region, not an object)."""
    images, anns = [], []
    for iid, k in enumerate((0, 1, 3, 7, 15, 25), start=1):
        images.append({"id": iid, "width": 640, "height": 480})
        for j in range(k):
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": 1, "bbox": [20 * j, 10, 15, 15],
                         "area": 225.0, "iscrowd": 0})
    anns.append({"id": len(anns) + 1, "image_id": 2, "category_id": 1, "bbox": [300, 300, 50, 50],
                 "area": 2500.0, "iscrowd": 1})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}


def test_density_bins_hold_the_images_and_objects_counted_by_hand():
    gt = density_case()
    bins = subsets.density_bins(gt, np.arange(1, 7))
    assert [(b.label, b.n_images, b.n_objects) for b in bins] == [
        ("1", 1, 1), ("2-5", 1, 3), ("6-10", 1, 7), ("11-20", 1, 15), (">20", 1, 25)]
    assert [b.mask.tolist() for b in bins][0] == [0, 1, 0, 0, 0, 0]
    # a bin's AP is COCOeval's on its images only
    dets = [{**d, "score": 0.5 + 0.001 * k} for k, d in enumerate(perfect(gt)[::2])]
    ev = evaluations(gt, dets)
    for b in bins:
        want = coco_eval(gt, dets, [int(i) for i in ev.img_ids[b.mask > 0]])
        with contextlib.redirect_stdout(io.StringIO()):
            want.accumulate()
            want.summarize()
        assert mean_ap(accumulate(ev, b.mask[None]))[0] == want.stats[0]
    with pytest.raises(ValueError, match="increasing"):
        subsets.density_bins(gt, np.arange(1, 7), (5, 2))


def crowding_case() -> tuple[dict, list[dict]]:
    """A and B overlap with IoU 1/3 (50 / 150), C stands alone. Detections: C exactly
    (0.9), A exactly (0.8), and a box far from everything (0.95, background)."""
    boxes = {"A": [0, 0, 10, 10], "B": [5, 0, 10, 10], "C": [100, 100, 10, 10]}
    anns = [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
            for k, b in enumerate(boxes.values())]
    gt = {"images": [{"id": 1, "width": 640, "height": 480}], "annotations": anns,
          "categories": [{"id": 1, "name": "box"}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": boxes["C"], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": boxes["A"], "score": 0.8},
            {"image_id": 1, "category_id": 1, "bbox": [300, 300, 10, 10], "score": 0.95}]
    return gt, dets


def test_crowding_values_and_ap_worked_out_by_hand():
    gt, dets = crowding_case()
    gt_value, dt_value, background = subsets.crowding_values(gt, dets)
    assert gt_value.tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])
    assert dt_value[:2].tolist() == pytest.approx([0.0, 1 / 3]) and background.tolist() == [False, False, True]
    ev, bins = subsets.crowding_eval(gt, dets, [1])
    assert [(b.label, b.n_objects) for b in bins] == [("0-0.1", 1), ("0.1-0.3", 0), (">=0.3", 2)]
    acc = accumulate(ev, np.ones((1, 1), dtype=np.int64))
    # 0-0.1: the background FP (0.95) ranks above C (0.9): precision 1/2 at every recall threshold
    assert mean_ap(acc, "0-0.1")[0] == pytest.approx(0.5)
    # >=0.3: the background FP then A; C's detection is ignored (it matches an object outside the bin);
    # recall reaches 1/2 with precision 1/2: 51 of the 101 thresholds at 0.5
    assert mean_ap(acc, ">=0.3")[0] == pytest.approx(0.5 * 51 / 101)
    assert mean_ap(acc, "0.1-0.3")[0] == -1.0  # no object in the bin
    assert mean_ap(acc, "all")[0] == mean_ap(accumulate(evaluations(gt, dets), np.ones((1, 1), np.int64)))[0]


def boot(center: float, spread: float, n: int = 1000) -> BootstrapDelta:
    return BootstrapDelta(center, np.random.default_rng(0).normal(center, spread, n))


def test_non_inferiority_decisions():
    ok = decide([0.010, 0.012, 0.011], boot(0.011, 0.002))
    assert ok.decision == SUPPORTED and ok.low > -0.005
    worse = decide([-0.020, -0.025, -0.022], boot(-0.022, 0.002))
    assert worse.decision == NOT_SUPPORTED and worse.high < -0.005
    wide = decide([0.03, -0.04], boot(-0.005, 0.01))
    assert wide.decision == INCONCLUSIVE and wide.low < -0.005 < wide.high
    single = decide([0.05], boot(0.05, 0.001))
    assert single.decision == INCONCLUSIVE and single.seed_interval is None
    assert any("one seed" in r for r in single.reasons)
    # the combined interval is wider than the seed interval alone
    assert ok.high - ok.low > ok.seed_interval[1] - ok.seed_interval[0]


def write_eval_files(run_dir: Path, gt: dict, dets: list[dict]) -> None:
    with gzip.open(run_dir / "eval_gt.json.gz", "wt") as f:
        json.dump(gt, f)
    (run_dir / "predictions.json").write_text(json.dumps(dets))
    ev = evaluations(gt, dets)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["metrics"]["map"] = float(mean_ap(accumulate(ev, np.ones((1, ev.n_images), np.int64)))[0])
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("better", [False, True])
def test_report_states_the_verdict_from_run_directories(tmp_path, better):
    gt, dets = random_case(5, n_img=80, crowd=0.0)
    for seed in (0, 1, 2):
        write_eval_files(identity_run(tmp_path, f"b{seed}", "cspdarknet_s", seed), gt, dets)
        cand = perfect(gt) + dets if better else dets
        write_eval_files(identity_run(tmp_path, f"c{seed}", "convnext_tiny", seed), gt, cand)
    rep = build_report([tmp_path], resamples=200)
    verdict = json.loads((rep.out_dir / "verdict.json").read_text())
    if better:
        assert verdict["decision"] == SUPPORTED and verdict["ci"][0] > 0
        assert "convnext_tiny ≥ cspdarknet_s (COCO mAP@0.5:0.95, non-inferiority margin 0.50 points): supported" \
            in rep.markdown
    else:  # identical predictions: delta 0 in every pair and every resample
        assert verdict["delta"] == 0.0 and verdict["ci"] == [0.0, 0.0] and verdict["decision"] == SUPPORTED
    assert verdict["n_pairs"] == 3 and verdict["n_images"] == 80
    for section in ("## Small objects", "### AP by scene density", "### AP by crowding", "(TIDE)"):
        assert section in rep.markdown
    study = (rep.out_dir / "study.csv").read_text()
    assert "density" in study and "crowding" in study


def test_no_verdict_without_the_per_image_files(tmp_path):
    for seed in (0, 1):
        identity_run(tmp_path, f"b{seed}", "cspdarknet_s", seed)
        identity_run(tmp_path, f"c{seed}", "convnext_tiny", seed)
    rep = build_report([tmp_path], resamples=200)
    assert "No verdict: per-image statistics need every paired run's files" in rep.markdown
    assert "eval_gt.json.gz is missing" in rep.markdown and not (rep.out_dir / "verdict.json").exists()


def test_no_verdict_when_the_recipes_differ(tmp_path):
    gt, dets = random_case(6, n_img=20)
    write_eval_files(identity_run(tmp_path, "b0", "cspdarknet_s", 0, optimizer="sgd"), gt, dets)
    write_eval_files(identity_run(tmp_path, "c0", "convnext_tiny", 0), gt, dets)
    rep = build_report([tmp_path], resamples=200)
    assert "No verdict: no convnext_tiny row was trained under identical conditions" in rep.markdown
    assert "optimizer" in rep.markdown.split("No verdict:")[1].split("\n")[0]


def test_a_density_bin_of_few_images_gets_no_interval(tmp_path):
    """Resampling 2 images gives a spread near 0: shown as no interval, not as certainty."""
    gt, dets = random_case(5, n_img=80, crowd=0.0)
    for seed in (0, 1):
        write_eval_files(identity_run(tmp_path, f"b{seed}", "cspdarknet_s", seed), gt, dets)
        write_eval_files(identity_run(tmp_path, f"c{seed}", "convnext_tiny", seed), gt, perfect(gt) + dets)
    rep = build_report([tmp_path], resamples=200)
    rows = {r.name: r for r in rep.study.density}
    few = [r for r in rows.values() if 0 < r.n_images < 10]
    many = [r for r in rows.values() if r.n_images >= 10]
    assert few and many
    assert all(len(r.delta.values) == 0 for r in few) and all(len(r.delta.values) == 200 for r in many)
    line = next(ln for ln in rep.markdown.splitlines() if ln.startswith(f"| {few[0].name} |"))
    assert line.rstrip().endswith("| – |")
