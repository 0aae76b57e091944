"""Test fixtures: reference vectors of the official YOLOv5, offline hubs, few threads.

The official vectors the suite needs live in the repo (tests/reference/, yolov5n, see its
README), so a fresh clone tests everything with nothing beside it. The larger yolov5s
set is optional: with YOLO_REFERENCE_DIR pointing at it, the parity tests run on it too
(`ref` is parametrised over both); without, those cases skip and say why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see yolo_core/__init__.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parent / "reference"
COMPACT_FILES = ("yolov5n_seed0_cases.pt", "yolov5n_seed0_official_format.pt")
YOLOV5S_FILES = ("loss_case.pt", "yolov5s_seed0_state.pt", "yolov5s_seed0_official_format.pt",
                 "official_format_eval_case.pt", "yolov5s_state_keys.txt")
# the loss gains of the yolov5s set (its README): hyp.scratch-low, not rescaled
RAW_GAINS = {"box": 0.05, "obj": 1.0, "cls": 0.5, "cls_pw": 1.0, "obj_pw": 1.0, "anchor_t": 4.0,
             "fl_gamma": 0.0, "label_smoothing": 0.0}


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """tests/reference: the compact official yolov5n vectors, part of the repo (missing = a broken checkout)."""
    missing = [f for f in COMPACT_FILES if not (REFERENCE / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{REFERENCE} lacks {missing}: these reference vectors are committed with the "
                                f"tests (see tests/reference/README.md); restore them from git")
    return REFERENCE


@pytest.fixture(scope="session")
def yolov5s_reference_dir() -> Path:
    """The optional yolov5s vectors, only from an explicit YOLO_REFERENCE_DIR (never a guessed path)."""
    env = os.environ.get("YOLO_REFERENCE_DIR")
    if not env:
        pytest.skip("optional yolov5s reference vectors not configured: set YOLO_REFERENCE_DIR to the folder "
                    "holding loss_case.pt and yolov5s_seed0_*.pt to run these extra checks (the yolov5n "
                    "vectors in tests/reference cover every check without them)")
    d = Path(env)
    missing = [f for f in YOLOV5S_FILES if not (d / f).is_file()]
    if missing:  # asked for and not there: an error, not a silent skip
        raise FileNotFoundError(f"YOLO_REFERENCE_DIR={env} lacks {missing}")
    return d


@dataclass
class Reference:
    """One official reference set, under the same names whichever files it came from."""

    name: str                       # the model: yolov5n or yolov5s, nc=80
    official_format: Path           # an official train.py-format checkpoint (pickled fp16 model)
    train_state: dict               # our key names, fp32: the weights `preds` were computed with
    imgs: torch.Tensor              # train-mode input, float in [0, 1]
    targets: torch.Tensor
    hyp: dict                       # the loss gains as given (not rescaled), official key names
    preds: list                     # the official raw train-mode maps of `imgs`
    loss: float                     # sum of loss_items x batch size
    loss_items: torch.Tensor        # lbox, lobj, lcls with `hyp`
    matches_per_level: list
    grad_global_l2: float
    variants: dict = field(default_factory=dict)  # id -> (hyp overrides, official loss_items)
    x_eval: torch.Tensor | None = None
    y_eval: torch.Tensor | None = None  # decoded eval-mode output of official_format's model
    y_eval_atol: float = 0.0
    n_params: int = 0


def _yolov5n(d: Path) -> Reference:
    from yolo_core import load_checkpoint_weights

    c = torch.load(d / "yolov5n_seed0_cases.pt", weights_only=True)
    return Reference(
        name="yolov5n", official_format=d / "yolov5n_seed0_official_format.pt",
        # the cases were computed from the fp16-rounded weights, which is what the file holds
        train_state=load_checkpoint_weights(d / "yolov5n_seed0_official_format.pt"),
        imgs=c["imgs_u8"].float() / 255, targets=c["targets"], hyp=dict(c["hyp"]),
        preds=list(c["preds"]),
        loss=float(c["loss"]), loss_items=c["loss_items"].float(), matches_per_level=list(c["matches_per_level"]),
        grad_global_l2=float(c["grad_global_l2"]),
        variants={"label_smoothing_0.1": ({"label_smoothing": 0.1}, c["variant_ls0_1_items"].float()),
                  "fl_gamma_1.5": ({"fl_gamma": 1.5}, c["variant_fl_gamma1_5_items"].float()),
                  "obj_scaled": ({"obj": (128 / 640) ** 2}, c["variant_obj_scaled_items"].float())},
        # README: ~4e-6 between reloads; measured 6e-9 here (outputs up to ~400 px)
        x_eval=c["x_eval_u8"].float() / 255, y_eval=c["y_eval"], y_eval_atol=1e-4, n_params=int(c["n_params"]))


def _yolov5s(d: Path) -> Reference:
    from yolo_core.models.official_keys import from_official

    c = torch.load(d / "loss_case.pt")
    e = torch.load(d / "official_format_eval_case.pt")
    items = c["loss_items"].float()
    return Reference(
        name="yolov5s", official_format=d / "yolov5s_seed0_official_format.pt",
        train_state=from_official(torch.load(d / "yolov5s_seed0_state.pt")),  # fp32: loss_case's weights
        imgs=c["imgs"], targets=c["targets"], hyp=dict(RAW_GAINS), preds=[c[f"pred{i}"] for i in range(3)],
        loss=float(c["loss"]), loss_items=items, matches_per_level=c["matches_per_level"].tolist(),
        grad_global_l2=float(c["grad_global_l2"]),
        variants={"label_smoothing_0.1": ({"label_smoothing": 0.1}, c["variant_ls0.1_items"].float()),
                  # yolov5_facts.md section 9 (not in the file): lobj 0.00403240, lcls 0.0229721
                  "fl_gamma_1.5": ({"fl_gamma": 1.5}, torch.tensor([items[0].item(), 0.00403240, 0.0229721])),
                  "obj_scaled": ({"obj": (320 / 640) ** 2}, c["variant_obj_scaled_items"].float())},
        x_eval=e["x"], y_eval=e["y_eval"], y_eval_atol=1e-3, n_params=7_235_389)


@pytest.fixture(scope="session")
def yolov5n_ref(reference_dir) -> Reference:
    """The compact yolov5n set (tests/reference), always there."""
    return _yolov5n(reference_dir)


@pytest.fixture(scope="session", params=["yolov5n", "yolov5s"])
def ref(request) -> Reference:
    """Each official reference set: yolov5n always (tests/reference), yolov5s with YOLO_REFERENCE_DIR."""
    if request.param == "yolov5n":
        return request.getfixturevalue("yolov5n_ref")
    return _yolov5s(request.getfixturevalue("yolov5s_reference_dir"))


@pytest.fixture(scope="session")
def embedded_set_256(tmp_path_factory) -> Path:
    """The embedded set at its default size (256 train, 64 val): the data the official
    checkpoint and numbers of tests/reference (yolov5n_official_synth_best.pt,
    official_val_synth.json, official_detect/) were made on. Its yaml."""
    from yolo_core.data import ensure_synthetic_dataset

    return ensure_synthetic_dataset(tmp_path_factory.mktemp("embedded") / "set256", n_train=256, n_val=64)
