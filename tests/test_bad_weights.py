"""Weights and checkpoints that cannot silently spoil a run: damaged, truncated, zip-bombed
or written while the disk filled up; every error names the file, the cause and how to go on.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from yolo_core.models import build_model
from yolo_core.models.checkpoint import (CheckpointError, check_checkpoint_file, load_checkpoint_weights,
                                         load_training_checkpoint)
from yolo_core.train.atomic import AtomicWriteError, atomic_torch_save, remove_orphaned_temps

REPO = Path(__file__).resolve().parents[1]


def _tiny_state(path: Path) -> Path:
    torch.save({"model": {"w": torch.randn(64, 64)}, "epoch": 0}, path)
    return path


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize("damage, match", [
    (lambda b: b"", r"empty file \(0 bytes\)"),
    (lambda b: b[: len(b) // 2], r"truncated: a zip archive .* without its end"),
    (lambda b: b"\x80\x02junk that is no pickle", r"cannot be read \("),
])
def test_damaged_checkpoint_names_file_cause_and_how_to_continue(tmp_path, damage, match):
    good = _tiny_state(tmp_path / "good.pt")
    bad = tmp_path / "last.pt"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(CheckpointError, match=match) as e:
        load_training_checkpoint(bad, hint="delete it or set resume=false")
    assert str(bad) in str(e.value) and str(e.value).endswith("delete it or set resume=false")
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint_weights(bad)  # init_weights / best.pt path
    assert str(bad) in str(e.value) and "intact weights file" in str(e.value)


def test_a_checkpoint_of_something_else_is_not_a_training_checkpoint(tmp_path):
    p = tmp_path / "last.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, p)
    with pytest.raises(CheckpointError, match=r"last\.pt: not a training checkpoint .*missing \['optimizer'\]"):
        load_training_checkpoint(p, required=("model", "optimizer"))


def test_truncated_safetensors_names_the_file(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(100)}, str(p))
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"w\.safetensors: cannot be read as safetensors"):
        load_checkpoint_weights(p)


def test_zip_bomb_is_refused_before_loading(tmp_path, monkeypatch):
    """torch.save stores its entries uncompressed: a deflated entry that expands 1000x is a bomb."""
    p = tmp_path / "bomb.pt"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))  # 64 MiB of zeros -> ~64 KiB
    assert p.stat().st_size < 1 << 20

    def no_load(*a, **k):
        raise AssertionError("torch.load must not be reached")

    monkeypatch.setattr(torch, "load", no_load)
    for load in (load_checkpoint_weights, load_training_checkpoint):
        with pytest.raises(CheckpointError, match=r"bomb\.pt: its zip entries declare 67108864 bytes .*zip bomb"):
            load(p)


def test_real_checkpoints_pass_the_file_check(tmp_path):
    p = tmp_path / "y.pt"
    torch.save(build_model("yolov5n", nc=3).state_dict(), p)
    check_checkpoint_file(p)
    assert len(load_checkpoint_weights(p)) > 100


# ---------------------------------------------------------------- writing


def test_full_disk_while_saving_names_the_file_and_keeps_the_previous_one(tmp_path):
    """A real torch.save into a file size limit (RLIMIT_FSIZE: the same EFBIG/short write a
    full disk gives; torch's writer reports only 'unexpected pos ...')."""
    target = tmp_path / "checkpoints" / "last.pt"
    script = textwrap.dedent(f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        from yolo_core.train.atomic import atomic_torch_save, AtomicWriteError
        atomic_torch_save({{"w": torch.zeros(1000)}}, {str(target)!r})        # the previous last.pt
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            atomic_torch_save({{"w": torch.zeros(1 << 20)}}, {str(target)!r})  # 4 MB
        except AtomicWriteError as e:
            print("ERROR", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    msg = out.stdout
    assert msg.startswith("ERROR could not write " + str(target)) and "full" in msg and "MiB free" in msg
    assert "resumes from the last complete checkpoint" in msg
    assert torch.load(target, weights_only=True)["w"].shape == (1000,)  # the previous one, intact
    assert os.listdir(target.parent) == ["last.pt"]  # no temp file left behind


def test_orphaned_temp_files_are_found_by_their_pattern(tmp_path):
    keep = [tmp_path / n for n in ("last.pt", ".hidden.tmp", "x.abcdefgh.tmp", ".last.pt.ABCDEFGH.tmp")]
    orphans = [tmp_path / n for n in (".last.pt.k2j_9xq1.tmp", ".summary.json.abcd1234.tmp")]
    for p in keep + orphans:
        p.write_bytes(b"x")
    assert sorted(remove_orphaned_temps(tmp_path)) == sorted(orphans)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    assert remove_orphaned_temps(tmp_path / "nope") == []


# ---------------------------------------------------------------- the trainer


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    from yolo_core.data import ensure_synthetic_dataset

    return str(ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "set", n_train=8, n_val=4))


TINY = dict(epochs=1, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2)


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short"])
def test_corrupt_last_pt_fails_the_run_with_how_to_continue_and_orphans_go(tmp_path, tiny_data, content):
    from yolo_core.train.config import TrainConfig
    from yolo_core.train.trainer import train

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.pt").write_bytes(content)
    orphans = [run / "checkpoints/.last.pt.a1b2c3d4.tmp", run / ".summary.json.zz99yy88.tmp"]
    for p in orphans:
        p.write_bytes(b"half a checkpoint")
    with pytest.raises(CheckpointError) as e:
        train(TrainConfig(out_dir=str(run), data=tiny_data, **TINY))
    msg = str(e.value)
    assert str(run / "checkpoints/last.pt") in msg and "resume=false" in msg and "delete it" in msg
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "resume=false" in summary["error"]
    assert not any(p.exists() for p in orphans)
    # the way out the message gives works
    done = train(TrainConfig(out_dir=str(run), data=tiny_data, resume=False, **TINY))
    assert done["status"] == "completed"


# ---------------------------------------------------------------- weights of another model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """State dicts of the official layouts (nc=80) and an unrelated file, saved once."""
    d = tmp_path_factory.mktemp("weights")
    out = {}
    for name in ("yolov5n", "yolov5s"):
        torch.manual_seed(0)
        out[name] = d / f"{name}.pt"
        torch.save(build_model(name, nc=80).state_dict(), out[name])
    out["unrelated"] = d / "unrelated.pt"
    torch.save({"encoder.layer.0.weight": torch.randn(16, 16), "decoder.bias": torch.randn(16)}, out["unrelated"])
    return out


@pytest.mark.parametrize("source, model, kwargs, scope, done, expected", [
    ("yolov5n", "yolov5s", {}, "all", 3, 291),       # another width: only the 3 head biases' box/obj rows
    ("unrelated", "yolov5s", {}, "all", 0, 291),
    ("yolov5n", "convnext_nano", {"neck": "yolov5s"}, "neck_head", 3, 126),
])
def test_weights_of_another_model_are_refused(weights, source, model, kwargs, scope, done, expected):
    from yolo_core.models.transfer import WeightsTransferError, transfer_weights

    report = transfer_weights(build_model(model, nc=3, **kwargs), load_checkpoint_weights(weights[source]), scope)
    with pytest.raises(WeightsTransferError) as e:
        report.check(1.0, str(weights[source]))
    msg = str(e.value)
    assert str(weights[source]) in msg and f"only {done} of the {expected} tensors scope {scope!r}" in msg
    assert "init_min_transfer" in msg
    rec = report.to_dict(str(weights[source]), 1.0)
    assert (rec["transferred"], rec["expected"]) == (done, expected)
    assert json.loads(json.dumps(rec)) == rec
    report.check(0.0, str(weights[source]))  # the documented way to accept a partial transfer


@pytest.mark.parametrize("model, kwargs, scope, expected", [
    ("yolov5s", {}, "all", 291), ("convnext_nano", {"neck": "yolov5s"}, "neck_head", 126)])
def test_the_right_weights_pass_with_a_class_count_change(weights, model, kwargs, scope, expected):
    from yolo_core.models.transfer import transfer_weights

    report = transfer_weights(build_model(model, nc=3, **kwargs), load_checkpoint_weights(weights["yolov5s"]), scope)
    report.check(1.0)
    rec = report.to_dict()
    assert rec["transferred"] == rec["expected"] == expected and rec["fraction"] == 1.0
    assert rec["partial_class_rows"] == 6 and rec["not_transferred"] == {}


@pytest.mark.slow
def test_run_with_init_weights_of_another_model_fails_and_records_the_counts(tmp_path, tiny_data, weights):
    from yolo_core.models.transfer import WeightsTransferError
    from yolo_core.train.config import TrainConfig
    from yolo_core.train.trainer import Trainer, train

    run = tmp_path / "bad"
    with pytest.raises(WeightsTransferError, match=r"yolov5n\.pt: only 3 of the 291 tensors"):
        train(TrainConfig(out_dir=str(run), data=tiny_data, init_weights=str(weights["yolov5n"]), **TINY))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "init_min_transfer" in summary["error"]
    rec = summary["weights_transfer"]["init_weights"]
    assert (rec["transferred"], rec["expected"], rec["source"]) == (3, 291, str(weights["yolov5n"]))
    assert rec["not_transferred"] == {"shape mismatch": 288}

    good = tmp_path / "good"
    trainer = Trainer(TrainConfig(out_dir=str(good), data=tiny_data, init_weights=str(weights["yolov5s"]), **TINY))
    summary = trainer.fit()
    assert summary["status"] == "completed"
    assert trainer.transfer_report == summary["weights_transfer"]["init_weights"]
    on_disk = json.loads((good / "summary.json").read_text())["weights_transfer"]
    assert on_disk["init_weights"]["fraction"] == 1.0 and on_disk["init_weights"]["partial_class_rows"] == 6
    assert on_disk["backbone_pretrained"] is None


# ---------------------------------------------------------------- a timm trunk's pretrained file


def test_convnext_pretrained_file_of_another_model_is_refused(weights):
    from yolo_core.models.timm_backbone import PretrainedWeightsMismatch

    with pytest.raises(PretrainedWeightsMismatch, match=r"yolov5s\.pt does not hold the weights of timm model "
                                                        r"'convnext_nano': 46 of the 46 trunk tensors"):
        build_model("convnext_nano", nc=3, pretrained=str(weights["yolov5s"]))


def test_convnext_pretrained_file_timm_cannot_apply_is_refused(tmp_path):
    from safetensors.torch import save_file

    from yolo_core.models.timm_backbone import PretrainedWeightsMismatch

    p = tmp_path / "junk.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3)}, str(p))
    with pytest.raises(PretrainedWeightsMismatch, match=r"junk\.safetensors cannot be loaded into timm model"):
        build_model("convnext_nano", nc=3, pretrained=str(p))


def test_convnext_pretrained_file_that_matches_is_loaded_and_recorded(tmp_path):
    import timm

    torch.manual_seed(5)
    full = timm.create_model("convnext_nano", pretrained=False)
    p = tmp_path / "convnext_nano.pt"
    torch.save(full.state_dict(), p)
    model = build_model("convnext_nano", nc=3, pretrained=str(p))
    rec = model.backbone.pretrained_report
    assert rec == {"source": str(p), "tensors": 46, "loaded": 46, "checked": True}
    assert torch.equal(model.backbone.trunk.stem_0.weight, full.stem[0].weight)
