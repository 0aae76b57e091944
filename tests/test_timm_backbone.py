"""timm trunks as YOLO backbones: levels, parameter counts, normalisation, every way to
initialise (random, local file, hub when offline) and whose BatchNorm settings apply."""
from __future__ import annotations

import re
import time

import huggingface_hub
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

import yolo_core.models.timm_backbone as timm_backbone
from yolo_core.models import build_model, count_params, model_facts
from yolo_core.models.blocks import Conv
from yolo_core.models.timm_backbone import (PretrainedWeightsUnavailable, is_timm_model,
                                            select_stride_levels)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def convnext_tiny():
    return build_model("convnext_tiny", nc=80, neck="yolov5s").eval()


@pytest.fixture
def no_download(monkeypatch):
    """timm.create_model calls asking for pretrained weights (a download): recorded, refused."""
    tried = []
    real = timm.create_model

    def create_model(*args, **kwargs):
        if kwargs.get("pretrained"):
            tried.append(args)
            raise AssertionError(f"a download was attempted: timm.create_model{args} pretrained=True")
        return real(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", create_model)
    return tried


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    """No weights cached anywhere, so the hub would really be needed."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.mark.parametrize("size", [64, 96, 320])
def test_convnext_tiny_levels_at_strides_8_16_32(convnext_tiny, size):
    with torch.no_grad():
        feats = convnext_tiny.backbone(torch.rand(1, 3, size, size))
    assert [tuple(f.shape) for f in feats] == [(1, 192, size // 8, size // 8), (1, 384, size // 16, size // 16),
                                              (1, 768, size // 32, size // 32)]
    assert convnext_tiny.backbone.out_channels == (192, 384, 768)
    assert convnext_tiny.backbone.out_indices == (1, 2, 3)


def test_convnext_tiny_parameter_counts(convnext_tiny):
    trunk = count_params(convnext_tiny.backbone)
    assert trunk == 27_818_592  # timm's features_only convnext_tiny (no classifier head)
    adapters = sum(ci * co + 2 * co for ci, co in ((192, 128), (384, 256), (768, 512)))  # 1x1 conv + BN
    yolov5s = build_model("yolov5s", nc=80)
    neck_head = count_params(yolov5s) - count_params(yolov5s.backbone)
    expected = trunk + adapters + neck_head
    total = count_params(convnext_tiny)
    print(f"convnext_tiny + yolov5s neck/head, nc=80: {total:,} parameters "
          f"(trunk {trunk:,}, adapters {adapters:,}, neck+head {neck_head:,})")
    assert total == expected == 31_400_413
    assert count_params(convnext_tiny.adapter) == adapters


def test_imagenet_normalisation_inside(convnext_tiny):
    bb = convnext_tiny.backbone
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = bb.trunk((x - mean) / std)
        got = bb(x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    buffers = dict(convnext_tiny.named_buffers())
    assert {"backbone.mean", "backbone.std"} <= set(buffers)  # follow .to(device)
    assert not {"backbone.mean", "backbone.std"} & set(convnext_tiny.state_dict())  # not in checkpoints


def test_model_facts_of_timm_model(convnext_tiny):
    facts = model_facts(convnext_tiny, imgsz=64)
    assert facts["params"] == count_params(convnext_tiny)
    assert facts["backbone_params"] == count_params(convnext_tiny.backbone) + count_params(convnext_tiny.adapter)
    assert 0 < facts["backbone_gflops"] < facts["gflops"]


def test_full_forward_shapes(convnext_tiny):
    with torch.no_grad():
        decoded, raw = convnext_tiny(torch.rand(1, 3, 64, 96))
    assert decoded.shape == (1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 85)
    assert [tuple(r.shape) for r in raw] == [(1, 3, 8, 12, 85), (1, 3, 4, 6, 85), (1, 3, 2, 3, 85)]


def _timm_key(trunk_key: str) -> str:
    """features_only flattens the first level: stages_1.blocks.0 <- stages.1.blocks.0."""
    return re.sub(r"^(stem|stages)_(\d+)\.", r"\1.\2.", trunk_key)


def test_local_safetensors_file_loads(tmp_path):
    import timm

    torch.manual_seed(123)
    source = timm.create_model("convnext_nano", pretrained=False)
    weights = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / "convnext_nano.safetensors"
    save_file(weights, str(path))

    model = build_model("convnext_nano", nc=3, neck="yolov5s", pretrained=str(path), drop_path_rate=0.1)
    trunk = model.backbone.trunk.state_dict()
    assert len(trunk) > 100
    for key, value in trunk.items():
        torch.testing.assert_close(value, weights[_timm_key(key)], rtol=0, atol=0, msg=key)
    drop = [m.drop_prob for m in model.backbone.trunk.modules() if type(m).__name__ == "DropPath"]
    assert drop and max(drop) == pytest.approx(0.1)


def test_missing_local_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        build_model("convnext_nano", nc=3, pretrained=str(tmp_path / "nope.safetensors"))


@pytest.mark.parametrize("name,pretrained", [("convnext_tiny", "convnext_tiny.in12k_ft_in1k"),
                                             ("convnext_tiny.in12k_ft_in1k", True),
                                             ("convnext_tiny", "in12k_ft_in1k")])
def test_offline_hub_fails_fast_with_instructions(monkeypatch, empty_hub_cache, no_download, name, pretrained):
    """Fast because nothing touches the network: no reachability probe, no download attempt."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    probed = []
    monkeypatch.setattr(timm_backbone, "hub_reachable", lambda *a, **k: probed.append(a) or True)
    t0 = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        build_model(name, nc=80, pretrained=pretrained)
    assert probed == [] and no_download == []
    assert time.perf_counter() - t0 < 60  # only a hang fails this; the checks above prove "fast"
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "pretrained=" in msg and ".safetensors" in msg
    assert "huggingface-cli download timm/convnext_tiny.in12k_ft_in1k" in msg


def test_unreachable_hub_fails_fast(monkeypatch, empty_hub_cache, no_download):
    """Not offline, but the endpoint (TEST-NET-1, never routed) does not answer: one probe,
    bounded by HUB_PROBE_TIMEOUT_S, and no download (huggingface_hub's own timeouts and
    retries would take far longer)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://192.0.2.1")
    probes = []
    real_probe = timm_backbone.hub_reachable

    def probe(url, timeout=None):
        t0 = time.perf_counter()
        ok = real_probe(url, timeout)
        probes.append((url, ok, time.perf_counter() - t0))
        return ok

    monkeypatch.setattr(timm_backbone, "hub_reachable", probe)
    with pytest.raises(PretrainedWeightsUnavailable, match="unreachable"):
        build_model("convnext_nano", nc=80, pretrained=True)
    assert no_download == [] and [(url, ok) for url, ok, _ in probes] == [("http://192.0.2.1", False)]
    # within the probe's own bound (HUB_PROBE_TIMEOUT_S + 0.5 s join; "no route" answers at once);
    # a connect without a timeout takes the OS's ~2 min. The bound leaves a loaded machine ample slack.
    assert probes[0][2] < 30


def test_bn_settings_yolo_layers_only():
    """YOLO's adapter/neck use eps 1e-3, momentum 0.03; a timm trunk's BN keeps timm's."""
    model = build_model("resnet18", nc=3, neck="yolov5n")
    assert model.backbone.out_indices == (2, 3, 4) and model.backbone.out_channels == (128, 256, 512)
    yolo_bn = [m for part in (model.adapter, model.neck) for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
    trunk_bn = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(yolo_bn) > 3 and len(trunk_bn) > 10
    assert sum(isinstance(m, Conv) for m in model.adapter.modules()) == 3  # 128/256/512 -> 64/128/256
    assert all(m.eps == 1e-3 and m.momentum == 0.03 for m in yolo_bn)
    assert all(m.eps == 1e-5 and m.momentum == 0.1 for m in trunk_bn)
    assert all(torch.all(m.running_var == 1) for m in trunk_bn)  # timm's init, no YOLO stride-probe mimic


def test_convnext_has_no_batchnorm_in_trunk(convnext_tiny):
    assert not any(isinstance(m, nn.BatchNorm2d) for m in convnext_tiny.backbone.modules())
    bns = [m for m in convnext_tiny.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)


def test_names_and_stride_selection():
    assert is_timm_model("convnext_tiny") and is_timm_model("convnext_tiny.in12k_ft_in1k")
    assert not is_timm_model("yolov5q")
    assert select_stride_levels([4, 8, 16, 32]) == (1, 2, 3)
    assert select_stride_levels([2, 4, 8, 16, 32]) == (2, 3, 4)
    with pytest.raises(ValueError, match="strides"):
        select_stride_levels([16] * 12, "vit")
    with pytest.raises(ValueError, match="timm"):
        build_model("yolov5q", nc=3)
    with pytest.raises(ValueError, match="strides"):
        build_model("vit_tiny_patch16_224", nc=3)
