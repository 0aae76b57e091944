"""A run's identity (yolo_core/train/identity.py) and the re-run rules it gives a run directory."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from yolo_core.data import ensure_synthetic_dataset, load_dataset
from yolo_core.loggers import RunLogger
from yolo_core.train import TrainConfig, train
from yolo_core.train.identity import IdentityMismatch, differences, identity_digest, run_identity

TINY = dict(epochs=2, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2, noautoanchor=True)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    return str(ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "set", n_train=8, n_val=4))


def _identity(cfg: TrainConfig, data) -> dict:
    return run_identity(cfg.validate(), data, device_type="cpu", world_size=1, amp=False)


def test_identity_ignores_what_cannot_change_a_number_and_keeps_the_rest(tiny_data, tmp_path) -> None:
    data = load_dataset(tiny_data)
    base = _identity(TrainConfig(out_dir="a", data=tiny_data, **TINY), data)
    same = _identity(TrainConfig(out_dir="elsewhere", data=tiny_data, run_name="x", axes={"backbone": "b"},
                                 **{**TINY, "workers": 3}), data)
    assert identity_digest(base) == identity_digest(same)
    other = _identity(TrainConfig(out_dir="a", data=tiny_data, hyp={"weight_decay": 0.05}, **TINY), data)
    assert identity_digest(other) != identity_digest(base)
    assert differences(base, other) == ["hyp.weight_decay: 0.0005 -> 0.05"]


def test_weights_files_are_identified_by_content(tiny_data, tmp_path) -> None:
    data = load_dataset(tiny_data)
    a = tmp_path / "a.pt"
    torch.save({"w": torch.zeros(3)}, a)
    moved = tmp_path / "moved" / "b.pt"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    ida = _identity(TrainConfig(data=tiny_data, init_weights=str(a), **TINY), data)
    idb = _identity(TrainConfig(data=tiny_data, init_weights=str(moved), **TINY), data)
    assert identity_digest(ida) == identity_digest(idb)  # a renamed file is the same run
    torch.save({"w": torch.ones(3)}, a)  # a replaced file at the same path is not
    idc = _identity(TrainConfig(data=tiny_data, init_weights=str(a), **TINY), data)
    assert [d.split(":")[0] for d in differences(ida, idc)] == ["init_weights"]


def test_dataset_is_identified_by_its_records(tiny_data, tmp_path) -> None:
    data = load_dataset(tiny_data)
    from pathlib import Path

    copy = tmp_path / "copy"
    shutil.copytree(Path(tiny_data).parent, copy)  # the same files elsewhere: the same dataset
    copy_yaml = copy / Path(tiny_data).name
    assert _identity(TrainConfig(data=str(copy_yaml), **TINY), load_dataset(copy_yaml))["data"] == \
        _identity(TrainConfig(data=tiny_data, **TINY), data)["data"]
    other = ensure_synthetic_dataset(tmp_path / "other", n_train=8, n_val=4, seed=1)
    assert _identity(TrainConfig(data=str(other), **TINY), load_dataset(other))["data"]["digest"] != \
        _identity(TrainConfig(data=tiny_data, **TINY), data)["data"]["digest"]


class StopAfterFirstEpoch(RunLogger):
    def log_epoch(self, epoch, row):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_rerun_rules_of_a_run_directory(tiny_data, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = dict(out_dir=str(out), data=tiny_data, **TINY)
    first = train(TrainConfig(**cfg))
    assert first["status"] == "completed" and first["identity"]["digest"]
    summary_bytes = (out / "summary.json").read_bytes()
    # same identity, completed: skipped, nothing rewritten
    assert train(TrainConfig(**{**cfg, "workers": 1}))["identity"] == first["identity"]
    assert (out / "summary.json").read_bytes() == summary_bytes
    # another lr0 or fewer epochs: refused, with the differences named; the run stays as it was
    with pytest.raises(IdentityMismatch, match=r"hyp\.lr0: 0\.01 -> 0\.005.*resume=false"):
        train(TrainConfig(**cfg, hyp={"lr0": 0.005}))
    with pytest.raises(IdentityMismatch, match=r"epochs: 2 -> 1"):
        train(TrainConfig(**{**cfg, "epochs": 1}))
    assert (out / "summary.json").read_bytes() == summary_bytes
    # resume=false starts over
    assert train(TrainConfig(**{**cfg, "epochs": 1}, resume=False))["epochs_completed"] == 1


@pytest.mark.slow
def test_an_interrupted_run_resumes_only_under_its_own_identity(tiny_data, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = dict(out_dir=str(out), data=tiny_data, **TINY)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg), logger=StopAfterFirstEpoch())
    with pytest.raises(IdentityMismatch, match=r"\(preempted, 1 epochs\).*hyp\.lr0: 0\.01 -> 0\.02"):
        train(TrainConfig(**cfg, hyp={"lr0": 0.02}))
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted"
    # last.pt holds the identity too: with summary.json gone, the checkpoint still refuses
    (out / "summary.json").unlink()
    with pytest.raises(IdentityMismatch, match=r"last\.pt is a run of another config"):
        train(TrainConfig(**cfg, hyp={"lr0": 0.02}))
    resumed = train(TrainConfig(**cfg))
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 2
    assert "resumed from" in (out / "train.log").read_text()


@pytest.mark.slow
def test_a_run_without_identity_is_not_continued_blindly(tiny_data, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = dict(out_dir=str(out), data=tiny_data, **TINY)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg), logger=StopAfterFirstEpoch())
    legacy = json.loads((out / "summary.json").read_text())
    del legacy["identity"]
    (out / "summary.json").write_text(json.dumps(legacy))
    with pytest.raises(IdentityMismatch, match="without a run identity"):
        train(TrainConfig(**cfg))


def test_an_identity_of_older_code_in_an_older_form_is_still_the_same_run(tmp_path, monkeypatch) -> None:
    """Older code stored only the synthetic parameters its config named; the identity now holds
    them all (defaults filled). A run of the same config must still be skipped (or resumed), and
    a real difference still refused."""
    from yolo_core.train.identity import prelaunch_differences

    monkeypatch.setenv("YOLO_CORE_DATA", str(tmp_path / "data"))
    cfg = dict(out_dir=str(tmp_path / "run"), data="synthetic",
               synthetic={"n_train": 8, "n_val": 4, "image_size": 160}, **TINY)
    first = train(TrainConfig(**cfg))
    stored = first["identity"]
    assert stored["config"]["synthetic"]["background"] == "flat"   # the defaults are written out
    older = json.loads(json.dumps(stored))
    older["config"]["synthetic"] = {"n_train": 8, "n_val": 4, "image_size": 160}
    older["digest"] = "0123456789abcdef"                            # as the older form hashed
    assert prelaunch_differences(older["config"], TrainConfig(**cfg).validate()) == []
    path = tmp_path / "run" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "identity": older}))
    assert train(TrainConfig(**cfg))["status"] == "completed"       # skipped: the same run
    assert json.loads(path.read_text())["identity"]["digest"] == "0123456789abcdef"  # nothing rewritten
    older["config"]["synthetic"]["n_train"] = 9
    path.write_text(json.dumps({**json.loads(path.read_text()), "identity": older}))
    with pytest.raises(IdentityMismatch, match=r"synthetic\.n_train: 9 -> 8"):
        train(TrainConfig(**cfg))
