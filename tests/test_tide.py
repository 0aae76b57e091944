"""analysis/tide.py: TIDE's error types and dAPs on a case worked out by hand.

One image, one detection of each error type and one missed object. With 3 class-1 objects
(A, C, D) and 1 class-2 object (B), COCO AP@0.5 is: class 1, one true positive on top
(precision 1 up to recall 1/3: 34 of the 101 thresholds) = 34/101; class 2 none = 0.
"""
from __future__ import annotations

import pytest

from analysis.tide import classify


def box(x, y):
    return [float(x), float(y), 10.0, 10.0]


def case():
    objs = [("A", 1, box(0, 0)), ("B", 2, box(50, 50)), ("C", 1, box(100, 100)), ("D", 1, box(200, 200))]
    gt = {"images": [{"id": 1, "width": 640, "height": 480}],
          "annotations": [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": b, "area": 100.0, "iscrowd": 0}
                          for k, (_, c, b) in enumerate(objs)],
          "categories": [{"id": c, "name": str(c)} for c in (1, 2, 3)]}
    dets = [(box(0, 0), 0.9),      # true positive of A
            (box(0, 0), 0.8),      # Dupe: A is taken
            (box(50, 50), 0.7),    # Cls: on B, which is class 2
            (box(205, 200), 0.6),  # Loc: IoU 1/3 with D
            (box(400, 400), 0.5),  # Bkg
            (box(55, 50), 0.4)]    # Both: IoU 1/3 with B (another class), nothing of its own class
    return gt, [{"image_id": 1, "category_id": 1, "bbox": b, "score": s} for b, s in dets]


def test_each_error_type_is_found_once():
    errors = classify(*case())
    assert errors.by_detection == {1: "Dupe", 2: "Cls", 3: "Loc", 4: "Bkg", 5: "Both"}
    assert errors.counts() == {"Cls": 1, "Loc": 1, "Both": 1, "Dupe": 1, "Bkg": 1, "Miss": 1}
    assert errors.missed == [2]  # C; B and D are pointed at by the Cls and Loc errors


def test_daps_worked_out_by_hand():
    errors = classify(*case())
    base = (34 / 101 + 0) / 2
    assert errors.ap50 == pytest.approx(base)
    # Cls fixed: class 2 gets its true positive, AP 1
    assert errors.dap["Cls"] == pytest.approx((34 / 101 + 1) / 2 - base)
    # Loc fixed: class 1 reaches recall 2/3 at precision 2/4: (34 + 33 * 0.5) / 101 = 0.5
    assert errors.dap["Loc"] == pytest.approx(0.5 / 2 - base)
    # Miss fixed: C leaves the ground truth, class 1 recall 1/2 at precision 1: 51/101
    assert errors.dap["Miss"] == pytest.approx(51 / 101 / 2 - base)
    # the others sit below the only true positive of their class: fixing them changes nothing
    assert errors.dap["Dupe"] == errors.dap["Bkg"] == errors.dap["Both"] == 0.0
