"""The YOLOv5 family against the official model: sizes, outputs, fuse, bad input."""
from __future__ import annotations

import pytest
import torch

from yolo_core import build_model
from yolo_core.models import count_params, gflops
from yolo_core.models.official_keys import from_official, to_official

# ../shared/reference/README.md (official v7.0 counts, nc=80)
OFFICIAL_PARAMS = {"yolov5n": 1_872_157, "yolov5s": 7_235_389, "yolov5m": 21_190_557,
                   "yolov5l": 46_563_709, "yolov5x": 86_749_405}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_param_counts_match_official(name):
    assert count_params(build_model(name, 80)) == OFFICIAL_PARAMS[name]


def test_yolov5s_gflops_at_640_within_2_percent_of_official():
    assert gflops(build_model("yolov5s", 80), 640) == pytest.approx(16.5, rel=0.02)


def test_official_state_dict_loads_strict_and_round_trips(reference_dir):
    official = torch.load(reference_dir / "yolov5s_seed0_state.pt")
    model = build_model("yolov5s", 80)
    model.load_state_dict(from_official(official), strict=True)
    back = to_official(model.state_dict())
    assert set(back) == set(official)
    assert all(torch.equal(back[k], official[k]) for k in official)


def test_fresh_buffers_equal_official_constructor(reference_dir):
    """BN stats after the official stride probe (running_var 0.9, one tracked batch) and anchors."""
    official = torch.load(reference_dir / "yolov5s_seed0_state.pt")
    fresh = to_official(build_model("yolov5s", 80).state_dict())
    buffers = [k for k in official if "running" in k or "num_batches" in k or k.endswith("anchors")]
    assert len(buffers) == 57 * 3 + 1
    for k in buffers:
        assert torch.equal(fresh[k], official[k]), k


def test_state_dict_keys_and_shapes_match_reference_list(reference_dir):
    rows = [line.split("\t") for line in (reference_dir / "yolov5s_state_keys.txt").read_text().splitlines()]
    ours = to_official(build_model("yolov5s", 80).state_dict())
    assert len(rows) == 349 == len(ours)
    for key, shape, _dtype in rows:
        assert tuple(ours[key].shape) == eval(shape), key


def test_train_mode_outputs_reproduce_official(reference_dir):
    case = torch.load(reference_dir / "loss_case.pt")
    model = build_model("yolov5s", 80)
    model.load_state_dict(from_official(torch.load(reference_dir / "yolov5s_seed0_state.pt")))
    model.train()
    with torch.no_grad():
        preds = model(case["imgs"])
    for i, p in enumerate(preds):
        assert p.shape == case[f"pred{i}"].shape
        assert (p - case[f"pred{i}"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("hw", [(64, 96), (160, 96), (96, 96)])
def test_eval_output_shape_non_square(hw):
    h, w = hw
    model = build_model("yolov5n", nc=3).eval()
    with torch.no_grad():
        decoded, raw = model(torch.rand(2, 3, h, w))
    n = 3 * sum((h // s) * (w // s) for s in (8, 16, 32))
    assert decoded.shape == (2, n, 8)
    assert [tuple(r.shape) for r in raw] == [(2, 3, h // s, w // s, 8) for s in (8, 16, 32)]
    # decoded boxes are in input pixels: centres inside a stride-sized margin of the image
    assert decoded[..., 0].min() >= -32 and decoded[..., 0].max() <= w + 32
    assert 0 <= decoded[..., 4].min() and decoded[..., 4:].max() <= 1


def test_decode_matches_hand_computation():
    """One cell by hand: xy = (2 sigmoid - 0.5 + cell) * stride, wh = (2 sigmoid)^2 * anchor_px."""
    model = build_model("yolov5n", nc=1).eval()
    raw = torch.zeros(1, 3, 2, 3, 6)
    raw[0, 1, 1, 2, :4] = torch.tensor([0.3, -0.2, 0.5, -1.0])
    out = model.head.decode(0, raw).view(1, 3, 2, 3, 6)
    s = torch.sigmoid(torch.tensor([0.3, -0.2, 0.5, -1.0]))
    expected_xy = ((2 * s[:2] - 0.5) + torch.tensor([2.0, 1.0])) * 8
    expected_wh = (2 * s[2:]) ** 2 * torch.tensor([16.0, 30.0])  # P3 anchor 1 in pixels
    torch.testing.assert_close(out[0, 1, 1, 2, :2], expected_xy)
    torch.testing.assert_close(out[0, 1, 1, 2, 2:4], expected_wh)


def test_detect_bias_prior():
    model = build_model("yolov5s", nc=80)
    for conv, s in zip(model.head.m, (8, 16, 32)):
        b = conv.bias.view(3, 85)
        bound = 1 / conv.in_channels ** 0.5  # PyTorch default uniform init before the prior
        prior_obj = torch.log(torch.tensor(8 / (640 / s) ** 2))
        prior_cls = torch.log(torch.tensor(0.6 / (80 - 0.99999)))
        assert ((b[:, 4] - prior_obj).abs() <= bound + 1e-6).all()
        assert ((b[:, 5:] - prior_cls).abs() <= bound + 1e-6).all()


def test_fuse_keeps_outputs():
    torch.manual_seed(0)
    model = build_model("yolov5s", nc=80)
    model.train()
    with torch.no_grad():  # non-trivial BN statistics
        for _ in range(2):
            model(torch.rand(2, 3, 64, 64))
    model.eval()
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        ref = model(x)[0]
        fused = model.fuse()(x)[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (ref - fused).abs().max().item() <= 1e-4


def test_bad_inputs_have_clear_errors():
    model = build_model("yolov5n", nc=2)
    with pytest.raises(ValueError, match="not a multiple of the max stride 32"):
        model(torch.rand(1, 3, 100, 96))
    with pytest.raises(ValueError, match="nc .* must be an integer >= 1"):
        build_model("yolov5s", nc=0)
    with pytest.raises(ValueError, match="unknown model 'yolov9s'.*yolov5s"):
        build_model("yolov9s", nc=80)


def test_state_dict_of_another_size_is_refused_with_names(reference_dir):
    official = from_official(torch.load(reference_dir / "yolov5s_seed0_state.pt"))
    with pytest.raises(RuntimeError, match="size mismatch for backbone.stem.conv.weight"):
        build_model("yolov5m", 80).load_state_dict(official)
    with pytest.raises(RuntimeError, match="size mismatch for head.m.0.weight"):
        build_model("yolov5s", 3).load_state_dict(official)
