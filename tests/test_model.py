"""The YOLOv5 family against the official model: sizes, outputs, fuse, bad input."""
from __future__ import annotations

import pytest
import torch

from yolo_core import build_model
from yolo_core.models import count_params, gflops
from yolo_core.models.checkpoint import _official_model, inert_state_dict, load_official_pickle
from yolo_core.models.official_keys import from_official, to_official

# official v7.0 counts, nc=80 (tests/reference/README.md; yolov5n also in the cases file)
OFFICIAL_PARAMS = {"yolov5n": 1_872_157, "yolov5s": 7_235_389, "yolov5m": 21_190_557,
                   "yolov5l": 46_563_709, "yolov5x": 86_749_405}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_param_counts_match_official(name):
    assert count_params(build_model(name, 80)) == OFFICIAL_PARAMS[name]


def test_param_count_of_the_reference_model(ref):
    """The count the official code reported for the reference model, and the parameters in its file."""
    assert ref.n_params == OFFICIAL_PARAMS[ref.name]
    model = build_model(ref.name, 80)
    assert count_params(model) == ref.n_params
    params = {n for n, _ in model.named_parameters()}
    assert sum(v.numel() for k, v in ref.train_state.items() if k in params) == ref.n_params


def test_yolov5s_gflops_at_640_within_2_percent_of_official():
    assert gflops(build_model("yolov5s", 80), 640) == pytest.approx(16.5, rel=0.02)


def official_file_state(path):
    """The official checkpoint's tensors under the official key names, read by the restricted loader."""
    return inert_state_dict(_official_model(load_official_pickle(path), path))


def test_official_keys_and_shapes_match_ours(ref):
    """Our state dict under official names: the official file's keys, in its order, with its shapes."""
    official = official_file_state(ref.official_format)
    ours = to_official(build_model(ref.name, 80).state_dict())
    assert len(official) == 349 == len(ours)
    assert list(ours) == list(official)
    for key, value in official.items():
        assert ours[key].shape == value.shape, key


def test_official_state_dict_loads_strict_and_round_trips(ref):
    official = {k: v.float() if v.is_floating_point() else v for k, v in official_file_state(ref.official_format).items()}
    model = build_model(ref.name, 80)
    model.load_state_dict(from_official(official), strict=True)
    back = to_official(model.state_dict())
    assert set(back) == set(official)
    assert all(torch.equal(back[k], official[k]) for k in official)


def test_fresh_buffers_equal_official_constructor(yolov5n_ref):
    """BN stats after the official stride probe (running_mean 0, running_var 0.9, one tracked batch),
    BN momentum 0.03, anchors.

    The yolov5n file was saved after one train-mode forward of the reference batch (two tracked
    batches): our fresh buffers (fp16-rounded, like every float of the official model before the
    cases were made), the file's weights and that one forward must give the file's buffers, to one
    fp16 rounding (the file is fp16)."""
    r = yolov5n_ref
    model = build_model("yolov5n", 80)
    fresh = model.state_dict()
    params = {n for n, _ in model.named_parameters()}
    buffers = [k for k in fresh if k not in params]
    assert len(buffers) == 57 * 3 + 1
    for k in buffers:
        if k.endswith("num_batches_tracked"):
            assert fresh[k].item() == 1, k
        elif k.endswith("running_mean"):
            assert torch.equal(fresh[k], torch.zeros_like(fresh[k])), k
        elif k.endswith("running_var"):
            torch.testing.assert_close(fresh[k], torch.full_like(fresh[k], 0.9), rtol=1e-7, atol=0, msg=k)
    assert torch.equal(to_official(fresh)["model.24.anchors"].half(),
                       official_file_state(r.official_format)["model.24.anchors"])  # anchors / stride
    start = {k: r.train_state[k] if k in params else
             (fresh[k].half().float() if fresh[k].is_floating_point() else fresh[k]) for k in fresh}
    model.load_state_dict(start, strict=True)
    model.train()
    with torch.no_grad():
        model(r.imgs)
    after = model.state_dict()
    for k in buffers:
        if k.endswith("num_batches_tracked"):
            assert after[k].item() == 2 == r.train_state[k].item(), k
        else:
            torch.testing.assert_close(after[k], r.train_state[k], rtol=2 ** -10, atol=1e-6, msg=k)


def test_fresh_buffers_equal_official_constructor_yolov5s(yolov5s_reference_dir):
    """The same on the yolov5s fp32 state, saved before any forward: equal to the last bit."""
    official = torch.load(yolov5s_reference_dir / "yolov5s_seed0_state.pt")
    fresh = to_official(build_model("yolov5s", 80).state_dict())
    buffers = [k for k in official if "running" in k or "num_batches" in k or k.endswith("anchors")]
    assert len(buffers) == 57 * 3 + 1
    for k in buffers:
        assert torch.equal(fresh[k], official[k]), k


def test_state_dict_keys_and_shapes_match_reference_list(yolov5s_reference_dir):
    rows = [line.split("\t") for line in (yolov5s_reference_dir / "yolov5s_state_keys.txt").read_text().splitlines()]
    ours = to_official(build_model("yolov5s", 80).state_dict())
    assert len(rows) == 349 == len(ours)
    for key, shape, _dtype in rows:
        assert tuple(ours[key].shape) == eval(shape), key


def test_train_mode_outputs_reproduce_official(ref):
    """Raw train-mode maps (BatchNorm on batch statistics) of the reference weights."""
    model = build_model(ref.name, 80)
    model.load_state_dict(ref.train_state, strict=True)
    model.train()
    with torch.no_grad():
        preds = model(ref.imgs)
    assert len(preds) == len(ref.preds) == 3
    for p, want in zip(preds, ref.preds):
        assert p.shape == want.shape
        assert (p - want).abs().max().item() <= 1e-4


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


def test_state_dict_of_another_size_is_refused_with_names(ref):
    bigger = "yolov5m" if ref.name == "yolov5s" else "yolov5s"
    with pytest.raises(RuntimeError, match="size mismatch for backbone.stem.conv.weight"):
        build_model(bigger, 80).load_state_dict(ref.train_state)
    with pytest.raises(RuntimeError, match="size mismatch for head.m.0.weight"):
        build_model(ref.name, 3).load_state_dict(ref.train_state)
