"""Official YOLOv5 checkpoints load without the official code and without running
anything a file names; this project's checkpoints and bare state dicts load too."""
from __future__ import annotations

import builtins
import os
import pickle
import sys
import types

import pytest
import torch

from yolo_core import load_checkpoint_weights
from yolo_core.models import build_model
from yolo_core.models.checkpoint import (InertObject, UnsafeCheckpointError, _official_model,
                                         inert_state_dict, load_official_pickle)
from yolo_core.models.official_keys import from_official


@pytest.fixture(scope="module")
def official_sd(ref):
    return load_checkpoint_weights(ref.official_format)


def test_official_format_loads_under_our_names(official_sd, ref):
    assert "models.yolo" not in sys.modules  # the official package is not needed
    ours = build_model(ref.name, nc=80).state_dict()
    assert list(official_sd) == list(ours)  # 349 keys, state_dict order, anchors included
    assert len(official_sd) == 349 and "head.anchors" in official_sd
    for key, value in official_sd.items():
        assert value.shape == ours[key].shape, key
        if value.is_floating_point():
            assert value.dtype == torch.float32, key  # fp16 in the file, fp32 out
            assert torch.equal(value.half().float(), value), key  # the fp16 values, unchanged
        else:
            assert value.dtype == ours[key].dtype, key
    torch.testing.assert_close(official_sd["head.anchors"], ours["head.anchors"], rtol=0, atol=0)


def test_official_format_matches_the_fp32_state_it_was_saved_from(yolov5s_reference_dir):
    """yolov5s: the official fp32 state dict, rounded to fp16, is what the official-format file holds."""
    official_sd = load_checkpoint_weights(yolov5s_reference_dir / "yolov5s_seed0_official_format.pt")
    seed_state = from_official(torch.load(yolov5s_reference_dir / "yolov5s_seed0_state.pt"))
    assert list(official_sd) == list(seed_state)
    for key, value in official_sd.items():
        want = seed_state[key]
        if want.is_floating_point():
            want = want.half().float()  # the file holds the fp16-rounded weights
        assert torch.equal(value, want), key


def test_official_format_reproduces_official_eval_output(official_sd, ref):
    """Decoded eval-mode output (running BN statistics, grid decode) of the official checkpoint's model."""
    model = build_model(ref.name, nc=80)
    model.load_state_dict(official_sd, strict=True)
    model.eval()
    with torch.no_grad():
        y, _ = model(ref.x_eval)
    assert y.shape == ref.y_eval.shape
    assert (y - ref.y_eval).abs().max().item() <= ref.y_eval_atol


class _SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _EvalCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("payload,refused", [(_SystemCall, f"{os.system.__module__}.system"),
                                            (_EvalCall, "__builtin__.eval")])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused(tmp_path, payload, refused, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    ckpt = {"epoch": 1, "model": payload(marker)}  # shaped like an official checkpoint
    if writer == "torch.save":
        torch.save(ckpt, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(ckpt, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_weights(path)
    assert not marker.exists()
    assert "refused to load" in str(err.value) and refused in str(err.value)


def test_yolov5_module_names_stay_inert(tmp_path, monkeypatch):
    """A 'models.yolo' global is only ever an inert container: calling it runs nothing."""
    marker = tmp_path / "pwned"

    def system(cmd):  # what a hostile 'models.yolo' would hold
        raise AssertionError("never called")

    fake = types.ModuleType("models.yolo")
    system.__module__, system.__qualname__, fake.system = "models.yolo", "system", system
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.yolo", fake)

    class Call:
        def __reduce__(self):
            return system, (f"touch {marker}",)

    path = tmp_path / "inert.pt"
    torch.save({"model": Call()}, path)
    monkeypatch.delitem(sys.modules, "models.yolo")
    obj = load_official_pickle(path)["model"]
    assert isinstance(obj, InertObject) and obj.pickled_name == "models.yolo.system"
    with pytest.raises(ValueError, match="no parameters"):
        load_checkpoint_weights(path)
    assert not marker.exists()


def test_ema_preferred_over_model(reference_dir):
    path = reference_dir / "yolov5n_seed0_official_format.pt"
    model_obj, ema_obj = load_official_pickle(path)["model"], load_official_pickle(path)["model"]
    assert _official_model({"model": model_obj, "ema": ema_obj}, path) is ema_obj
    assert _official_model({"model": model_obj, "ema": None}, path) is model_obj
    assert len(inert_state_dict(ema_obj)) == 349


def test_own_checkpoint_and_bare_state_dict(tmp_path, reference_dir):
    model = build_model("yolov5n", nc=3)
    sd = model.state_dict()
    path = tmp_path / "last.pt"
    torch.save({"model": sd, "epoch": 4, "optimizer": None}, path)
    loaded = load_checkpoint_weights(path)
    assert list(loaded) == list(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)

    # a bare state dict under the official key names, as torch.save(model.state_dict()) of the official code
    official_path = reference_dir / "yolov5n_seed0_official_format.pt"
    official = inert_state_dict(_official_model(load_official_pickle(official_path), official_path))  # fp16
    torch.save(official, tmp_path / "bare.pt")
    bare = load_checkpoint_weights(tmp_path / "bare.pt")
    assert list(bare) == list(build_model("yolov5n", nc=80).state_dict())
    want = from_official(official)
    for key, value in bare.items():
        assert value.dtype == (torch.float32 if want[key].is_floating_point() else want[key].dtype), key
        assert torch.equal(value, want[key].to(value.dtype)), key


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ValueError, match="state dict"):
        load_checkpoint_weights(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint_weights(tmp_path / "missing.pt")
