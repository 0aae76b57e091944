"""Export (yolo_core.deploy, python -m experiments.export): ONNX Runtime and TorchScript equal
PyTorch for both backbones, the exported file evaluates as the checkpoint does, and bad
settings are refused before anything is written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo_core.data import ensure_synthetic_dataset
from yolo_core.deploy import ExportConfig, export, load_exported
from yolo_core.eval.val import ValConfig, val
from yolo_core.models import build_model
from yolo_core.train.config import ConfigError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "tests" / "reference" / "yolov5n_official_synth_best.pt"
NAMES = ["circle", "square", "triangle"]


def _project_checkpoint(path: Path, name: str, **kwargs) -> Path:
    """A best.pt as the trainer writes it, of a freshly built model (seeded)."""
    torch.manual_seed(0)
    model = build_model(name, nc=len(NAMES), **kwargs)
    torch.save({"epoch": 0, "model": model.state_dict(), "model_name": name, "model_kwargs": kwargs,
                "nc": len(NAMES), "names": NAMES, "fitness": 0.0}, path)
    return path


@pytest.mark.parametrize("name, kwargs", [("yolov5n", {}), ("convnext_tiny", {"neck": "yolov5s"})])
@pytest.mark.parametrize("fmt, dynamic", [("onnx", False), ("onnx", True), ("torchscript", False)])
def test_the_exported_model_computes_what_pytorch_does(tmp_path: Path, name: str, kwargs: dict, fmt: str,
                                                       dynamic: bool) -> None:
    weights = _project_checkpoint(tmp_path / "best.pt", name, **kwargs)
    result = export(ExportConfig(weights=str(weights), format=fmt, imgsz=64, batch_size=2, dynamic=dynamic))
    assert result.path == tmp_path / f"best.{fmt}" and result.max_rel_diff <= 1e-4
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", f"best.{fmt}"}  # no partial file left

    exported = load_exported(result.path)
    assert exported.meta["names"] == NAMES and exported.meta["model_name"] == name
    model = build_model(name, nc=3, **kwargs)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    model.eval()
    shape = (3, 3, 96, 64) if dynamic else (2, 3, 64, 64)  # another batch and size where the graph allows it
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)[0]
    got = exported(x)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    if not dynamic:
        with pytest.raises(ValueError, match="exported for input shape"):
            exported(torch.rand(1, 3, 64, 64))


def test_a_dynamic_onnx_file_evaluates_as_its_checkpoint(tmp_path: Path, embedded_set_256: Path) -> None:
    """The official trained yolov5n: the same mAPs (COCO's and YOLOv5's) from ONNX Runtime as from
    PyTorch; P and R (read at the best-F1 confidence) move by ~1e-6, as with Conv+BN fusion."""
    data = embedded_set_256
    onnx_file = export(ExportConfig(weights=str(OFFICIAL), imgsz=96, dynamic=True, out=str(tmp_path / "m.onnx"))).path
    common = dict(data=str(data), imgsz=96, batch_size=32, workers=0, verbose=False)
    a = val(ValConfig(weights=str(OFFICIAL), out_dir=str(tmp_path / "pt"), **common)).metrics
    b = val(ValConfig(weights=str(onnx_file), out_dir=str(tmp_path / "onnx"), **common))
    assert b.settings["batch_size"] == 32  # rect batches, as the checkpoint's
    assert json.loads((tmp_path / "onnx" / "metrics.json").read_text())["weights"]["source"] == "onnx"
    maps = [k for k in a if k.startswith("map") or k.startswith("ar")]
    assert {k: b.metrics[k] for k in maps} == pytest.approx({k: a[k] for k in maps}, abs=1e-6)
    assert (b.metrics["precision"], b.metrics["recall"]) == pytest.approx((a["precision"], a["recall"]), abs=1e-5)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_fixed_shape_file_is_evaluated_in_its_shape(tmp_path: Path, fmt: str) -> None:
    data = ensure_synthetic_dataset(tmp_path / "set", n_train=4, n_val=5)
    weights = _project_checkpoint(tmp_path / "best.pt", "yolov5n")
    onnx_file = export(ExportConfig(weights=str(weights), format=fmt, imgsz=64, batch_size=2)).path
    result = val(ValConfig(weights=str(onnx_file), data=str(data), out_dir=str(tmp_path / "v"), workers=0,
                           conf_thres=0.0, verbose=False))
    assert result.metrics["map50_yolo"] is not None and json.loads(
        (tmp_path / "v" / "metrics.json").read_text())["weights"]["source"] == fmt
    assert (result.settings["imgsz"], result.settings["batch_size"]) == (64, 2)
    written = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert written["data"]["images"] == 5  # the last batch of one image padded to two, the pad dropped
    assert any("fixed input shape" in n for n in written["notes"])
    with pytest.raises(ConfigError, match="exported for imgsz=64"):
        val(ValConfig(weights=str(onnx_file), data=str(data), imgsz=96, out_dir=str(tmp_path / "w")))


@pytest.mark.parametrize("settings, says", [
    (dict(format="tflite"), "format='tflite' must be one of onnx, torchscript"),
    (dict(format="torchscript", dynamic=True), "dynamic=true is for format=onnx"),
    (dict(half=True), "half=true needs device=cuda"),
    (dict(imgsz=100), "imgsz=100 must be a positive multiple of 32"),
    (dict(opset=13), "opset=13"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path: Path, settings: dict, says: str) -> None:
    weights = _project_checkpoint(tmp_path / "best.pt", "yolov5n")
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        export(ExportConfig(weights=str(weights), **settings))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "experiments.export", f"hydra.run.dir={tmp_path / 'log'}",
                           *overrides], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_command_exports_and_refuses(tmp_path: Path) -> None:
    weights = _project_checkpoint(tmp_path / "best.pt", "yolov5n")
    proc = _cli(tmp_path, f"weights={weights}", "imgsz=64", "dynamic=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Exported {weights} to {tmp_path / 'best.onnx'}" in proc.stdout and (tmp_path / "best.onnx").is_file()
    proc = _cli(tmp_path, "weights=/nonexistent.pt")
    assert proc.returncode == 2 and "weights='/nonexistent.pt': no such file" in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
