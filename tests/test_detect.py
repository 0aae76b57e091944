"""Detection on images and videos (yolo_core.infer, python -m experiments.detect): every file is
drawn, labelled and listed in detections.json, an undecodable one is skipped and counted,
and settings, sources and shapes that cannot work are refused before anything is written."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_core.data import ensure_synthetic_dataset
from yolo_core.deploy import ExportConfig, export
from yolo_core.infer import DetectConfig, detect
from yolo_core.train.config import ConfigError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "tests" / "reference" / "yolov5n_official_synth_best.pt"  # trained on the embedded set


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """4 images of the embedded set's val split, a 3-frame video, a corrupt jpg and a txt."""
    data = ensure_synthetic_dataset(tmp_path_factory.mktemp("set") / "s", n_train=2, n_val=7)
    images = sorted((data.parent / "images" / "val").iterdir())
    src = tmp_path_factory.mktemp("src")
    for f in images[:4]:
        shutil.copy(f, src / f.name)
    video = cv2.VideoWriter(str(src / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (192, 192))
    for f in images[4:7]:
        video.write(cv2.imread(str(f)))
    video.release()
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (src / "notes.txt").write_text("not media\n")
    return src


def test_every_file_is_drawn_labelled_and_listed(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = detect(DetectConfig(weights=str(WEIGHTS), source=str(media), imgsz=96, conf_thres=0.1, save_txt=True,
                                 out_dir=str(out), progress=False))
    assert result.images == 4 + 3 and result.skipped == {"corrupt": 1}
    records = json.loads((out / "detections.json").read_text())
    assert [(Path(r["file"]).name, r["frame"]) for r in records][-3:] == [("clip.mp4", 0), ("clip.mp4", 1),
                                                                         ("clip.mp4", 2)]
    assert sum(len(r["detections"]) for r in records) == result.detections > 0
    for r in records[:4]:
        name = Path(r["file"]).name
        drawn, original = cv2.imread(str(out / name)), cv2.imread(str(media / name))
        assert drawn.shape == original.shape
        assert (drawn != original).any() == bool(r["detections"])  # boxes drawn where there are detections
        lines = (out / "labels" / f"{Path(name).stem}.txt").read_text().splitlines()
        assert len(lines) == len(r["detections"])
        for line, d in zip(lines, reversed(r["detections"])):  # detect.py's txt: ascending confidence
            c, x, y, w, h, conf = map(float, line.split())
            x1, y1, x2, y2 = d["xyxy"]
            assert int(c) == d["class_id"] and conf == pytest.approx(d["confidence"], abs=1e-5)
            assert (x * r["width"], y * r["height"]) == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2), abs=1e-3)
            assert (w * r["width"], h * r["height"]) == pytest.approx((x2 - x1, y2 - y1), abs=1e-3)
            assert 0 <= x1 < x2 <= r["width"] and 0 <= y1 < y2 <= r["height"]  # original pixels, clipped
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    video.release()
    assert (out / "labels" / "clip_2.txt").is_file() and not (out / "broken.jpg").exists()


def test_classes_keep_only_those_classes(media: Path, tmp_path: Path) -> None:
    result = detect(DetectConfig(weights=str(WEIGHTS), source=str(media / "*.png"), imgsz=96, conf_thres=0.05,
                                 classes=[2], save_img=False, out_dir=str(tmp_path), progress=False))
    records = json.loads((tmp_path / "detections.json").read_text())
    assert result.images == 4 and {d["class"] for r in records for d in r["detections"]} <= {"triangle"}
    assert not list(tmp_path.glob("*.png"))  # save_img=false


def test_a_dynamic_onnx_file_detects_what_the_checkpoint_does(media: Path, tmp_path: Path) -> None:
    onnx_file = export(ExportConfig(weights=str(WEIGHTS), imgsz=96, dynamic=True, out=str(tmp_path / "m.onnx"))).path
    common = dict(source=str(media / "*.png"), imgsz=96, conf_thres=0.1, save_img=False, progress=False)
    detect(DetectConfig(weights=str(WEIGHTS), out_dir=str(tmp_path / "pt"), **common))
    detect(DetectConfig(weights=str(onnx_file), out_dir=str(tmp_path / "onnx"), **common))
    a, b = (json.loads((tmp_path / d / "detections.json").read_text()) for d in ("pt", "onnx"))
    for ra, rb in zip(a, b):
        assert [d["class_id"] for d in ra["detections"]] == [d["class_id"] for d in rb["detections"]]
        assert np.allclose([d["xyxy"] for d in ra["detections"]], [d["xyxy"] for d in rb["detections"]], atol=1)
        assert np.allclose([d["confidence"] for d in ra["detections"]], [d["confidence"] for d in rb["detections"]],
                           atol=1e-4)


def test_what_cannot_work_is_refused_before_anything_is_written(media: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        detect(DetectConfig(weights=str(WEIGHTS), source=str(tmp_path / "nowhere"), out_dir=str(tmp_path / "a")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images or videos there"):
        detect(DetectConfig(weights=str(WEIGHTS), source=str(tmp_path / "empty"), out_dir=str(tmp_path / "a")))
    with pytest.raises(ConfigError, match=r"classes=\[7\] are not class indices .* \(0..2\)"):
        detect(DetectConfig(weights=str(WEIGHTS), source=str(media), classes=[7], out_dir=str(tmp_path / "a")))
    batch2 = export(ExportConfig(weights=str(WEIGHTS), imgsz=96, batch_size=2, out=str(tmp_path / "b2.onnx"))).path
    with pytest.raises(ConfigError, match="export with batch_size=1"):
        detect(DetectConfig(weights=str(batch2), source=str(media), out_dir=str(tmp_path / "a")))
    assert not (tmp_path / "a").exists()


def test_the_command_detects_and_refuses(media: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}

    def cli(*overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "experiments.detect", f"hydra.run.dir={tmp_path / 'out'}",
                               *overrides], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    proc = cli(f"weights={WEIGHTS}", f"source={media}", "imgsz=96")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Results saved to {tmp_path / 'out'}" in proc.stdout and "1 undecodable files skipped" in proc.stdout
    assert "skipped" in proc.stdout + proc.stderr and "broken.jpg" in proc.stdout + proc.stderr  # the warning names it
    proc = cli(f"weights={WEIGHTS}", f"source={tmp_path / 'nowhere'}")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("imgsz, conf", [(96, 0.25), (128, 0.1)])
def test_the_label_files_are_official_detect_pys(embedded_set_256: Path, tmp_path: Path, imgsz: int,
                                                 conf: float) -> None:
    """The official v7.0 detect.py --save-txt --save-conf (unfused; tests/reference/README.md) on
    29 images of the embedded set and a 5-frame video: the same files, lines, classes and
    boxes; confidences within the last printed digit."""
    ref = REPO / "tests" / "reference" / "official_detect"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(1, 30):
        shutil.copy(embedded_set_256.parent / "images" / "val" / f"{i:06d}.png", src)
    shutil.copy(ref / "clip.mp4", src)
    out = tmp_path / "out"
    detect(DetectConfig(weights=str(WEIGHTS), source=str(src), imgsz=imgsz, conf_thres=conf, save_txt=True,
                        save_img=False, out_dir=str(out), progress=False))
    want_dir = ref / f"s{imgsz}"
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(p.name for p in want_dir.iterdir())
    n = 0
    for f in want_dir.iterdir():
        got = [list(map(float, ln.split())) for ln in (out / "labels" / f.name).read_text().splitlines()]
        want = [list(map(float, ln.split())) for ln in f.read_text().splitlines()]
        assert len(got) == len(want), f.name
        for g, w in zip(got, want):
            assert g[:5] == pytest.approx(w[:5], abs=1e-6) and g[5] == pytest.approx(w[5], abs=2e-6), f.name
            n += 1
    assert n == {96: 89, 128: 748}[imgsz]
