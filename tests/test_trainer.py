"""The trainer end to end on tiny data: run directory, exact resume after a kill, bad input."""
from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo_core.data import ensure_synthetic_dataset
from yolo_core.train.config import TrainConfig
from yolo_core.train.run_files import COCO_STAT_NAMES, RESULTS_COLUMNS
from yolo_core.train.trainer import train

pytestmark = pytest.mark.slow

TINY = dict(epochs=2, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2, cache="ram")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("synthetic") / "set"
    return str(ensure_synthetic_dataset(root, n_train=12, n_val=6))


def test_run_directory_contract(tmp_path, tiny_data):
    out = tmp_path / "run"
    summary = train(TrainConfig(out_dir=str(out), data=tiny_data, seed=3, axes={"backbone": "cspdarknet_s"}, **TINY))
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert on_disk["epochs_completed"] == 2 and on_disk["best_epoch"] in (0, 1)
    assert set(COCO_STAT_NAMES) | {"precision", "recall"} == set(on_disk["metrics"])
    assert on_disk["axes"]["seed"] == 3 and on_disk["axes"]["imgsz"] == 64
    assert on_disk["model"]["params"] == sum(p.numel() for p in
                                             __import__("yolo_core").build_model("yolov5s", 3).parameters())
    assert on_disk["train_images_per_s"] > 0 and on_disk["device"] == "cpu"
    assert on_disk["versions"]["torch"] == torch.__version__.split("+")[0] or on_disk["versions"]["torch"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert list(rows[0])[:len(RESULTS_COLUMNS)] == list(RESULTS_COLUMNS)
    assert {"x/lr0", "x/lr1", "x/lr2"} <= set(rows[0])
    preds = json.loads((out / "predictions.json").read_text())
    assert preds and {"image_id", "category_id", "bbox", "score"} == set(preds[0])
    pr = list(csv.reader((out / "pr_curve.csv").open()))
    assert pr[0] == ["recall", "all", "circle", "square", "triangle"] and len(pr) == 1 + 101
    curve = np.array(pr[1:], dtype=float)
    np.testing.assert_allclose(curve[:, 0], np.linspace(0, 1, 101))
    np.testing.assert_allclose(curve[:, 1], curve[:, 2:].mean(1), atol=2e-6)
    # the "all" curve integrates to YOLOv5's mAP@0.5 of the final evaluation
    assert np.trapezoid(curve[:, 1], curve[:, 0]) == pytest.approx(on_disk["final_eval"]["map50_yolo"], abs=1e-5)
    assert set(on_disk["final_eval"]["speed_ms"]) == {"preprocess", "inference", "nms"}
    # eval_gt.json.gz + predictions.json alone give summary.json's COCO numbers (what the report recomputes)
    from analysis.image_eval import accumulate, coco_eval, coco_stats, from_cocoeval

    with gzip.open(out / "eval_gt.json.gz", "rt") as f:
        gt = json.load(f)
    assert len(gt["images"]) == 6 and {c["name"] for c in gt["categories"]} == {"circle", "square", "triangle"}
    ev = from_cocoeval(coco_eval(gt, preds))
    stats = coco_stats(accumulate(ev, np.ones((1, ev.n_images), dtype=np.int64)))
    for name in COCO_STAT_NAMES:
        want = on_disk["metrics"][name]
        assert (stats[name][0] if stats[name][0] >= 0 else None) == (want if want is None else pytest.approx(want, abs=1e-12)), name
    for name in ("last.pt", "best.pt"):
        state = torch.load(out / "checkpoints" / name, weights_only=True)  # plain tensors + primitives
        assert "model" in state
    assert (out / "train.log").read_text().count("epoch 2/2") == 1
    assert not list(out.rglob("*.tmp"))


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in state["ema"]["ema"].items()}}


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, tiny_data):
    kwargs = dict(TINY, epochs=3, data=tiny_data)
    train(TrainConfig(out_dir=str(tmp_path / "straight"), **kwargs))

    killed = tmp_path / "killed"
    # SIGKILL, no chance to clean up: as a node failure. The run sends it to itself right after
    # the first epoch's last.pt (log_epoch follows it), so where it dies does not depend on how
    # fast a poller notices the file on a loaded machine.
    script = ("import os, signal\nfrom yolo_core.loggers import RunLogger\n"
              "from yolo_core.train.trainer import train\nfrom yolo_core.train.config import TrainConfig\n"
              "class NodeFailure(RunLogger):\n"
              "    def log_epoch(self, epoch, row):\n"
              "        if epoch == 0:\n"
              "            os.kill(os.getpid(), signal.SIGKILL)\n"
              f"train(TrainConfig(out_dir={str(killed)!r}, **{kwargs!r}), logger=NodeFailure())\n"
              "raise SystemExit('not killed')\n")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    last = killed / "checkpoints" / "last.pt"
    assert last.exists(), "the run never wrote last.pt"
    assert torch.load(last, weights_only=False)["epoch"] == 0
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"

    summary = train(TrainConfig(out_dir=str(killed), **kwargs))
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    a, b = _final_weights(tmp_path / "straight"), _final_weights(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ after resume, e.g. {different[:3]}"
    rows = list(csv.DictReader((killed / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]  # no duplicate rows from the repeated epoch
    straight_rows = list(csv.DictReader((tmp_path / "straight" / "results.csv").open()))
    assert [r["train/box_loss"] for r in rows] == [r["train/box_loss"] for r in straight_rows]


class _SignalsOnFirstWrite:
    """A file that sends this process `signals` in the middle of torch.save writing to it."""

    def __init__(self, f, signals) -> None:
        self.f, self.signals = f, list(signals)

    def write(self, data) -> int:
        while self.signals:
            signal.raise_signal(self.signals.pop(0))  # to this thread: handled inside this write
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.parametrize("signals, says", [
    ([signal.SIGTERM], "received signal SIGTERM"),
    ([signal.SIGINT], "received signal SIGINT"),  # Ctrl-C: Python's KeyboardInterrupt here failed the run in CI
    ([signal.SIGTERM, signal.SIGINT], "received signal SIGTERM, then SIGINT: stopping at once"),  # insisting
])
def test_a_signal_during_a_checkpoint_write_records_preempted_and_resumes(tmp_path, tiny_data, monkeypatch,
                                                                           signals, says):
    """The signal lands inside torch.save of last.pt: the checkpoint is still written whole, the
    run says `preempted` (not `failed` with torch's zip-writer error), and a re-run resumes
    from that checkpoint. A second signal waits for the write too."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj and obj["epoch"] == 0:  # last.pt of epoch 0
            f = _SignalsOnFirstWrite(f, signals)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    out = tmp_path / "run"
    kwargs = dict(TINY, epochs=2, data=tiny_data)
    try:
        with pytest.raises(Exception, match=says) as info:
            train(TrainConfig(out_dir=str(out), **kwargs))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer's handler is gone
    finally:
        signal.signal(signal.SIGINT, previous)
    assert type(info.value).__name__ == "Preempted"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "preempted", summary["error"]
    assert summary["epochs_completed"] == 1
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(torch, "save", real_save)

    summary = train(TrainConfig(out_dir=str(out), **kwargs))
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert "resumed from" in (out / "train.log").read_text()


def test_label_class_out_of_range_fails_with_the_file_named(tmp_path, tiny_data):
    import shutil
    import yaml
    src = Path(tiny_data).parent
    dst = tmp_path / "bad"
    shutil.copytree(src, dst)
    data = yaml.safe_load((dst / "data.yaml").read_text())
    images = dst / "yolo" / "images"
    (dst / "yolo" / "labels").mkdir(parents=True)
    images.mkdir(parents=True)
    for split in ("train", "val"):
        for f in sorted((dst / data[split]).iterdir())[:4]:
            shutil.copy(f, images / f"{split}_{f.name}")
            (dst / "yolo" / "labels" / f"{split}_{f.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (dst / "yolo" / "labels" / f"train_{sorted((dst / data['train']).iterdir())[0].stem}.txt").write_text(
        "7 0.5 0.5 0.2 0.2\n")
    yolo_yaml = dst / "yolo.yaml"
    yolo_yaml.write_text(yaml.safe_dump({"path": str(dst / "yolo"), "train": "images", "val": "images",
                                         "names": ["a", "b", "c"]}))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"train_.*\.txt.*class 7"):
        train(TrainConfig(out_dir=str(out), data=str(yolo_yaml), **TINY))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "class 7" in summary["error"]


def test_corrupt_image_is_skipped_and_counted_in_summary(tmp_path, tiny_data):
    import shutil
    src = Path(tiny_data).parent
    dst = tmp_path / "set"
    shutil.copytree(src, dst)
    victim = sorted((dst / "images" / "train").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])  # truncated PNG
    out = tmp_path / "run"
    summary = train(TrainConfig(out_dir=str(out), data=str(dst / "data.yaml"), **dict(TINY, epochs=1)))
    assert summary["status"] == "completed"
    assert summary["data_warnings"]["train"].get("corrupt_image") == 1
    assert "corrupt_image" in (out / "train.log").read_text()


def test_frozen_backbone_does_not_move(tmp_path, tiny_data):
    out = tmp_path / "run"
    train(TrainConfig(out_dir=str(out), data=tiny_data, freeze_backbone_epochs=1, ema=False,
                      **dict(TINY, epochs=1)))
    from yolo_core import build_model
    torch.manual_seed(0 + 1)  # the trainer seeds seed + 1 before building the model
    # ... and rounds its weights through fp16 as the official train.py
    fresh = {k: v.half().float() if v.is_floating_point() else v for k, v in build_model("yolov5s", 3).state_dict().items()}
    trained = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["model"]
    moved = [k for k in trained if not torch.equal(trained[k], fresh[k])]
    assert moved and all(not k.startswith("backbone.") or "running" in k or "num_batches" in k for k in moved)


def test_convnext_tiny_two_epochs_write_the_run_directory(tmp_path, tiny_data):
    out = tmp_path / "run"
    summary = train(TrainConfig(out_dir=str(out), data=tiny_data, model="convnext_tiny",
                                model_kwargs={"neck": "yolov5s", "drop_path_rate": 0.1}, optimizer="adamw",
                                hyp={"lr0": 0.0002, "weight_decay": 0.05, "warmup_bias_lr": 0.0},
                                backbone_lr_mult=0.5, **TINY))
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["model"]["params"] > 30_000_000  # 27.8M trunk + adapters + yolov5s neck/head
    assert summary["model"]["backbone_params"] > 27_818_592
    rows = list(csv.DictReader((out / "results.csv").open()))
    n_groups = sum(1 for k in rows[0] if k.startswith("x/lr"))
    assert n_groups > 3  # YOLO groups + backbone groups with their own lr
    assert (out / "predictions.json").stat().st_size > 2
    assert torch.load(out / "checkpoints" / "best.pt", weights_only=True)["model_name"] == "convnext_tiny"


def test_rerun_of_a_completed_run_does_nothing(tmp_path, tiny_data):
    out = tmp_path / "run"
    cfg = dict(TINY, epochs=1, data=tiny_data)
    first = train(TrainConfig(out_dir=str(out), **cfg))
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = train(TrainConfig(out_dir=str(out), **cfg))
    assert again == json.loads(json.dumps(first))
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    fresh = train(TrainConfig(out_dir=str(out), resume=False, **cfg))  # starts over
    assert fresh["status"] == "completed"
    assert (out / "summary.json").stat().st_mtime_ns > mtimes[out / "summary.json"]


def test_a_logger_can_stop_training_early(tmp_path, tiny_data):
    from yolo_core.loggers import RunLogger

    class StopAfterFirst(RunLogger):
        def __init__(self):
            self.epochs = []

        def log_epoch(self, epoch, row):
            self.epochs.append(epoch)

        def should_stop(self):
            return "pruned by test" if self.epochs else None

    lg = StopAfterFirst()
    summary = train(TrainConfig(out_dir=str(tmp_path / "run"), data=tiny_data, **dict(TINY, epochs=3)), logger=lg)
    assert lg.epochs == [0]
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1
    assert summary["stopped_early"] == "pruned by test"
    assert (tmp_path / "run" / "predictions.json").exists()
