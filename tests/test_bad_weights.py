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
