"""The embedded synthetic set: deterministic, cached, boxes tight around what was drawn,
all three COCO size buckets present, readable by load_dataset."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_core.data import ensure_synthetic_dataset, load_dataset
from yolo_core.data import synthetic

SMALL = dict(n_train=24, n_val=8)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("syn") / "a", **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _saturation(px: np.ndarray) -> np.ndarray:
    """max - min over BGR: ~0 for grey (background +- noise), >= 100 for the shape colours."""
    px = px.astype(int)
    return px.max(-1) - px.min(-1)


def _near(a: list[int], b: list[int], gap: int = 2) -> bool:
    """Boxes (x, y, w, h) overlap or come within `gap` px of each other."""
    return (b[0] < a[0] + a[2] + gap and a[0] - gap < b[0] + b[2]
            and b[1] < a[1] + a[3] + gap and a[1] - gap < b[1] + b[3])


def test_deterministic_bytes_and_layout(small_set, tmp_path):
    root = small_set.parent
    other = ensure_synthetic_dataset(tmp_path / "b", **SMALL).parent
    a, b = _files(root), _files(other)
    assert a == b
    assert {"data.yaml", "manifest.json", "README.txt", "annotations/instances_train.json",
            "annotations/instances_val.json", "images/train/000001.png", "images/val/000008.png"} <= set(a)
    assert sum(k.startswith("images/train/") for k in a) == 24
    different = ensure_synthetic_dataset(tmp_path / "c", seed=1, **SMALL).parent
    assert _files(different)["images/train/000001.png"] != a["images/train/000001.png"]


def test_second_call_reuses_without_rewriting(small_set):
    root = small_set.parent
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert ensure_synthetic_dataset(root, **SMALL) == small_set
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert not [p for p in root.parent.iterdir() if ".tmp-" in p.name]  # no temp dir left behind


def test_other_params_in_same_root_refused(small_set):
    with pytest.raises(FileExistsError, match="other parameters"):
        ensure_synthetic_dataset(small_set.parent, seed=5, **SMALL)


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CORE_DATA", str(tmp_path))
    y = ensure_synthetic_dataset(n_train=2, n_val=1)
    assert y.parent.parent == tmp_path and y.parent.name.startswith("synthetic-") and y.is_file()
    assert ensure_synthetic_dataset(n_train=2, n_val=1) == y
    assert ensure_synthetic_dataset(n_train=3, n_val=1).parent != y.parent


def test_losing_a_race_uses_the_winners_copy(tmp_path, monkeypatch):
    """While this call generates, another process finishes the same set into root first."""
    winner = ensure_synthetic_dataset(tmp_path / "w", n_train=2, n_val=1).parent
    root = tmp_path / "r"
    real_generate = synthetic._generate

    def generate_then_lose(out, params):
        real_generate(out, params)
        shutil.copytree(winner, root)  # the other process's rename lands first

    monkeypatch.setattr(synthetic, "_generate", generate_then_lose)
    marker = root / "images/train/000001.png"
    assert ensure_synthetic_dataset(root, n_train=2, n_val=1) == root / "data.yaml"
    assert marker.read_bytes() == (winner / "images/train/000001.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "w"]  # our temp copy is gone


def test_boxes_inside_and_tight_around_drawn_pixels(small_set):
    root = small_set.parent
    checked = isolated = 0
    for split in ("train", "val"):
        coco = json.loads((root / f"annotations/instances_{split}.json").read_text())
        by_img: dict[int, list] = {}
        for a in coco["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        for im in coco["images"]:
            img = cv2.imread(str(root / "images" / split / im["file_name"]))
            assert img.shape == (im["height"], im["width"], 3) == (192, 192, 3)
            anns = by_img.get(im["id"], [])
            assert len(anns) in range(1, 9)
            for a in anns:
                x, y, w, h = a["bbox"]
                assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 192 and y + h <= 192
                assert a["area"] == w * h
                near = [o["bbox"] for o in anns if o is not a and _near(a["bbox"], o["bbox"])]
                if any(ow * oh <= w * h for _, _, ow, oh in near):
                    continue  # drawn before a neighbour (larger first): some pixels may be covered
                sat = _saturation(img)
                assert sat[y + h // 2, x + w // 2] > 60  # centre is shape colour (also for triangles)
                # tight: every box edge touches the shape
                assert sat[y, x:x + w].max() > 60 and sat[y + h - 1, x:x + w].max() > 60
                assert sat[y:y + h, x].max() > 60 and sat[y:y + h, x + w - 1].max() > 60
                if a["category_id"] == 2:  # square: corners are inside the shape
                    assert min(sat[y, x], sat[y, x + w - 1], sat[y + h - 1, x], sat[y + h - 1, x + w - 1]) > 60
                checked += 1
                if near:
                    continue
                # isolated: the 1 px ring just outside the box is background
                ring = np.concatenate([sat[y - 1, x - 1:x + w + 1] if y > 0 else [],
                                       sat[y + h, x - 1:x + w + 1] if y + h < 192 else [],
                                       sat[y:y + h, x - 1] if x > 0 else [],
                                       sat[y:y + h, x + w] if x + w < 192 else []])
                assert ring.max() < 40
                isolated += 1
    assert checked > 60 and isolated > 15


def test_size_buckets_and_counts(small_set):
    root = small_set.parent
    areas = []
    for split in ("train", "val"):
        coco = json.loads((root / f"annotations/instances_{split}.json").read_text())
        areas += [a["bbox"][2] * a["bbox"][3] for a in coco["annotations"]]
        assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle"]
    areas = np.array(areas)
    small, large = (areas < 32**2).sum(), (areas >= 96**2).sum()
    medium = len(areas) - small - large
    assert small > 0 and medium > 0 and large > 0
    assert 0.2 < small / len(areas) < 0.5
    manifest = json.loads((root / "manifest.json").read_text())
    got = {k: sum(manifest["splits"][s]["by_size"][k] for s in ("train", "val")) for k in ("small", "medium", "large")}
    assert got == {"small": small, "medium": medium, "large": large}
    assert (areas >= 16 * 16 * 0.8).all()  # no object below the 16 px design floor (allowing aspect)


def test_loads_through_load_dataset(small_set):
    ds = load_dataset(small_set)
    assert ds.nc == 3 and ds.names == ["circle", "square", "triangle"]
    assert len(ds.train.records) == 24 and len(ds.val.records) == 8 and ds.train.skipped == {}
    assert ds.val.category_ids == [1, 2, 3] and ds.val.coco_json.endswith("instances_val.json")
    coco = json.loads((small_set.parent / "annotations/instances_train.json").read_text())
    first = [a for a in coco["annotations"] if a["image_id"] == 1]
    want = [[a["category_id"] - 1, (a["bbox"][0] + a["bbox"][2] / 2) / 192, (a["bbox"][1] + a["bbox"][3] / 2) / 192,
             a["bbox"][2] / 192, a["bbox"][3] / 192] for a in first]
    np.testing.assert_allclose(ds.train.records[0].labels, want, atol=1e-6)


def test_texture_background_option_and_param_checks(tmp_path):
    y = ensure_synthetic_dataset(tmp_path / "t", n_train=2, n_val=1, background="texture")
    img = cv2.imread(str(y.parent / "images/train/000001.png"))
    assert _saturation(img).mean() > 15  # not flat grey
    with pytest.raises(ValueError, match="image_size"):
        ensure_synthetic_dataset(tmp_path / "x", image_size=96)
    with pytest.raises(ValueError, match="background"):
        ensure_synthetic_dataset(tmp_path / "x", background="noise")
    assert not os.path.exists(tmp_path / "x")
