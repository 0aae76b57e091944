"""YOLOv5 metrics on cases computed by hand (numbers derived in the comments)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_core.eval.boxes import scale_boxes
from yolo_core.eval.metrics import (IOU_THRESHOLDS, PR_RECALL, ap_per_class, compute_ap, fitness,
                                    match_predictions, yolo_metrics)


def test_match_official_pair_selection():
    """The official process_batch: pairs sorted by IoU, first pair per detection kept, then
    first pair per label -- but np.unique returns rows ordered by detection index, so a label
    claimed by several detections goes to the lowest index (the highest confidence after
    NMS), not to the highest IoU. A detection still takes its highest-IoU label."""
    labels = torch.tensor([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30]], dtype=torch.float32)
    det = torch.tensor([
        [0, 0, 10, 15, 0.9, 0],   # A: IoU 100/150 = 0.667 with label 0, index 0
        [0, 0, 10, 11, 0.5, 0],   # B: IoU 100/110 = 0.909 with label 0, index 1
        [20, 20, 30, 30, 0.8, 0],  # C: perfect box, wrong class
        [21, 20, 31, 30, 0.7, 1],  # D: IoU 90/110 = 0.818 with label 1
    ])
    got = match_predictions(det, labels, IOU_THRESHOLDS).numpy()
    thr = np.linspace(0.5, 0.95, 10)
    expected = np.stack([
        thr <= 0.667,                     # A: 0.50 .. 0.65 (it and B both claim label 0: A's index wins)
        (thr > 0.667) & (thr <= 0.909),   # B: 0.70 .. 0.90, where A no longer qualifies
        np.zeros(10, bool),               # C: class mismatch
        thr <= 0.818,                     # D: 0.50 .. 0.80
    ])
    np.testing.assert_array_equal(got, expected)


def test_match_one_detection_per_label_and_label_per_detection():
    # One detection over two labels of its class: it takes the higher-IoU label; the other
    # label is then free for a second detection that overlaps both.
    labels = torch.tensor([[0, 0, 0, 10, 10], [0, 0, 0, 10, 12]], dtype=torch.float32)
    det = torch.tensor([[0, 0, 10, 10, 0.9, 0],    # IoU 1.0 with l0, 100/120 = 0.833 with l1
                        [0, 0, 10, 11, 0.8, 0]])   # IoU 100/110 = 0.909 with l0, 110/120 = 0.917 with l1
    got = match_predictions(det, labels).numpy()
    # At 0.5: pairs by IoU: (l0,d0)=1.0, (l1,d1)=.917, (l0,d1)=.909, (l1,d0)=.833
    # -> d0 keeps l0, d1 keeps l1: both TP. At 0.95: only (l0,d0): d1 is FP.
    assert got[:, 0].tolist() == [True, True]
    assert got[:, 9].tolist() == [True, False]
    assert match_predictions(det[:0], labels).shape == (0, 10)
    assert not match_predictions(det, labels[:0]).any()


def hand_case(tail: int = 0):
    """Two classes. Detections as (conf, class, TP per IoU column).

    class 0 (2 labels): 0.9 TP at all IoUs; 0.8 FP; 0.7 TP only at IoU <= 0.75 (cols 0-5);
                        `tail` more FPs at conf 0.2.
    class 1 (1 label):  0.6 FP; 0.5 TP only at IoU <= 0.70 (cols 0-4).
    """
    rows = [(0.9, 0, 10), (0.8, 0, 0), (0.7, 0, 6)] + [(0.2, 0, 0)] * tail + [(0.6, 1, 0), (0.5, 1, 5)]
    tp = np.array([[j < n for j in range(10)] for _, _, n in rows])
    conf = np.array([r[0] for r in rows])
    pred_cls = np.array([r[1] for r in rows], dtype=float)
    target_cls = np.array([0, 0, 1], dtype=float)
    return tp, conf, pred_cls, target_cls


# AP (101-point, trapezoid; np.interp returns the last sentinel 0 at recall exactly 1):
# class 0, col 0: recall .5 .5 1, precision 1 .5 .667
#   envelope: 1 up to recall .5, then .667 on (.5, 1), 0 at 1.0
#   AP = .49*1 + .01*(1+.6667)/2 + .49*.6667 + .01*(.6667+0)/2 = 0.8283333
# class 0, cols 6-9 (only the 0.9 TP): recall .5 .5 .5, precision 1 .5 .333
#   f = 1 on [0,.5), then linear from 1/3 at .5 to 0 at 1 (mrec jumps .5 -> 1 sentinel)
#   AP = .49 + .01*(1+1/3)/2 + .5*(1/3)/2 = 0.58
# class 1, cols 0-4: recall 0 1, precision 0 .5; envelope .5 on [0, 1), 0 at 1
#   AP = .99*.5 + .01*(.5+0)/2 = 0.4975;  cols 5-9: no TP -> 0
AP0 = 0.49 + 0.01 * (1 + 2 / 3) / 2 + 0.49 * 2 / 3 + 0.01 * (2 / 3) / 2
AP0_HI = 0.49 + 0.01 * (1 + 1 / 3) / 2 + 0.5 * (1 / 3) / 2
AP1 = 0.99 * 0.5 + 0.01 * 0.25


def test_ap_per_class_hand_case():
    res = ap_per_class(*hand_case())
    np.testing.assert_array_equal(res.classes, [0, 1])
    expected_ap = np.array([[AP0] * 6 + [AP0_HI] * 4, [AP1] * 5 + [0.0] * 5])
    np.testing.assert_allclose(res.ap, expected_ap, atol=1e-9)
    assert res.map50 == pytest.approx((0.8283333 + 0.4975) / 2, abs=1e-6)
    assert res.map == pytest.approx(((6 * AP0 + 4 * AP0_HI) / 10 + 0.24875) / 2, abs=1e-9)
    # P/R at the best smoothed mean F1 (IoU 0.5 column). P and R curves are np.interp of
    # the cumulative values over conf (linear between detections, final value below the last):
    #   conf <= 0.5: class 0 P=2/3 R=1 (F1 .8), class 1 P=.5 R=1 (F1 .667): mean .733 (flat)
    #   conf in (.5, .6): class 1 R and P fall linearly to 0, class 0 F1 .8 -> mean < .733
    #   conf > .6: class 1 F1 0, class 0 F1 <= .8 -> mean <= .4
    #   -> the flat part wins (its smoothed value stays .733 up to conf .45):
    #      P = (2/3 + 1/2)/2 = 7/12, R = 1
    assert res.conf <= 0.5
    np.testing.assert_allclose(res.p, [2 / 3, 0.5], atol=1e-9)
    np.testing.assert_allclose(res.r, [1.0, 1.0], atol=1e-9)
    assert res.mp == pytest.approx(7 / 12) and res.mr == pytest.approx(1.0)
    np.testing.assert_array_equal(res.tp, [2, 1])  # round(R * labels)
    np.testing.assert_array_equal(res.fp, [1, 1])  # round(tp / P - tp)


def test_pr_curve_is_the_envelope_that_integrates_to_ap50():
    # the envelopes of the hand case (comment above) read at recall .25 and .75
    res = ap_per_class(*hand_case())
    assert res.pr_curve.shape == (2, len(PR_RECALL)) and PR_RECALL[25] == 0.25 and PR_RECALL[75] == 0.75
    np.testing.assert_allclose(res.pr_curve[:, 25], [1.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(res.pr_curve[:, 75], [2 / 3, 0.5], atol=1e-12)
    np.testing.assert_allclose(res.pr_curve[:, -1], [0.0, 0.0])  # the sentinel at recall 1
    np.testing.assert_allclose(np.trapezoid(res.pr_curve, PR_RECALL, axis=1), res.ap50, atol=1e-12)
    assert not np.any(np.diff(res.pr_curve, axis=1) > 0)  # an envelope never rises with recall


def test_low_confidence_tail_leaves_ap50_but_not_p():
    # Four more class-0 FPs at conf 0.2: recall stays 1, precision .5 .4 .333 .286 after
    # the 0.7 TP, all under the .667 envelope -> AP50 unchanged. Cols 6-9: precision ends
    # at 1/7, so f is linear from 1/7 at recall .5 to 0: AP = .49 + .01*(1+1/7)/2 + .5*(1/7)/2.
    res = ap_per_class(*hand_case(tail=4))
    assert res.ap[0, 0] == pytest.approx(AP0, abs=1e-9)
    assert res.ap[0, 9] == pytest.approx(0.49 + 0.01 * (1 + 1 / 7) / 2 + 0.5 * (1 / 7) / 2, abs=1e-9)
    # P is read above conf 0.2, not at the final 2/7 of class 0 (F1 .44 there)
    assert res.conf > 0.2 and res.p[0] > 0.5


def test_yolo_metrics_and_fitness():
    m = yolo_metrics(*hand_case())
    assert m["precision"] == pytest.approx(7 / 12) and m["recall"] == pytest.approx(1.0)
    assert m["map50"] == pytest.approx((AP0 + AP1) / 2)
    tp, conf, pred_cls, target_cls = hand_case()
    zero = yolo_metrics(np.zeros_like(tp), conf, pred_cls, target_cls)
    assert zero == {"precision": 0.0, "recall": 0.0, "map50": 0.0, "map": 0.0}
    assert yolo_metrics(np.zeros((0, 10), bool), np.zeros(0), np.zeros(0), target_cls)["map"] == 0.0
    assert fitness(0.5, 0.3) == pytest.approx(0.05 + 0.27)


def test_compute_ap_perfect_and_half():
    assert compute_ap(np.array([1.0]), np.array([1.0]))[0] == pytest.approx(0.995)  # 0 at recall 1
    # recall .5 at precision 1 only: f = 1 on [0, .5], linear to 0 at 1 -> .5 + .25 = .75
    assert compute_ap(np.array([0.5]), np.array([1.0]))[0] == pytest.approx(0.75)


def test_scale_boxes_letterbox_and_ratio_pad():
    # 100x200 (h, w) image letterboxed into 320x320: gain 1.6, resized 160x320, pad (0, 80)
    b = torch.tensor([[0.0, 80.0, 320.0, 240.0], [-10.0, 70.0, 330.0, 250.0]])
    out = scale_boxes((320, 320), b.clone(), (100, 200))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 200.0, 100.0]] * 2))
    # ratio_pad given by the loader (rect batch shape 192x320, pad 16 top): only gain_h is used
    b = torch.tensor([[16.0, 32.0, 176.0, 112.0]])
    out = scale_boxes((192, 320), b, (100, 200), ratio_pad=((1.6, 1.6), (0.0, 16.0)))
    torch.testing.assert_close(out, torch.tensor([[10.0, 10.0, 110.0, 60.0]]))
    n = scale_boxes((192, 320), np.array([[16.0, 32.0, 400.0, 112.0]]), (100, 200), ((1.6, 1.6), (0.0, 16.0)))
    np.testing.assert_allclose(n, [[10.0, 10.0, 200.0, 60.0]])
