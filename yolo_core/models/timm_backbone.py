"""Any timm model with `features_only` as a YOLO backbone, and the detector built on it.

timm's `features_only` contract (feature maps plus `feature_info` with channels and
reduction per level) is close to ours: we pick the levels at reductions 8/16/32, put the
ImageNet mean/std normalisation inside (YOLO feeds 0..1 RGB, timm weights expect
normalised input; YOLOv5 #833/#3358), and align channels to an unchanged YOLOv5 neck
with the detector's ChannelAdapter.

Pretrained weights come from a local file (works anywhere) or the Hugging Face hub (only
when it is reachable: offline or unreachable fails in seconds with how to use a local
file, never timm's long download retries).

timm loads a features_only model's pretrained weights non-strictly: a file of another
model only logs "Unexpected keys ..." and leaves the trunk at random init. A local file
is therefore checked after loading (check_pretrained_loaded): every trunk tensor that is
not constant (random-init LayerNorm ones/zeros are) must equal a tensor of the file, or
the build is refused naming the file; a file timm cannot apply at all is refused too.
"""
from __future__ import annotations

import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import timm
import torch

from .backbone import STRIDES, Backbone
from .detector import YOLODetector
from .variants import yolov5_size
from .yolov5 import mimic_stride_probe, yolov5_neck_and_head

LOCAL_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}
_DEFAULT_MEAN = (0.485, 0.456, 0.406)  # ImageNet, when a model's cfg has none
_DEFAULT_STD = (0.229, 0.224, 0.225)


class PretrainedWeightsUnavailable(RuntimeError):
    """Raised when hub weights are asked for but the hub cannot be used from here."""


class PretrainedWeightsMismatch(ValueError):
    """A local pretrained file that does not hold this timm model's trunk weights."""


def timm_architecture(name: str) -> str:
    """'convnext_tiny.in12k_ft_in1k' -> 'convnext_tiny' (timm's 'arch.tag' naming)."""
    return name.split(".", 1)[0]


def is_timm_model(name: str) -> bool:
    """True when timm knows the architecture part of `name` (a pretrained tag may follow)."""
    arch = timm_architecture(name)
    return bool(arch) and (timm.is_model(arch) or bool(timm.list_models(arch)))


def select_stride_levels(reductions: list[int], name: str = "model") -> tuple[int, ...]:
    """Indices of the feature levels at reductions 8, 16, 32 (the deepest one if repeated)."""
    picked = []
    for stride in STRIDES:
        idx = [i for i, r in enumerate(reductions) if r == stride]
        if not idx:
            raise ValueError(f"timm model {name!r} has features at reductions {reductions}, but a YOLO backbone "
                             f"needs strides {list(STRIDES)}; choose a hierarchical (CNN-like) timm model, "
                             f"e.g. convnext_tiny or resnet50")
        picked.append(idx[-1])
    return tuple(picked)


def _feature_info(name: str) -> list[dict]:
    """feature_info of a timm model without allocating weights (built on the meta device)."""
    arch = timm_architecture(name)
    try:
        with torch.device("meta"):
            probe = timm.create_model(arch, features_only=True, pretrained=False)
    except Exception:  # noqa: BLE001 - some inits cannot run on meta: build it for real
        try:
            probe = timm.create_model(arch, features_only=True, pretrained=False)
        except RuntimeError as e:
            raise ValueError(f"timm model {name!r} cannot be a YOLO backbone: it does not support "
                             f"features_only ({e})") from e
    return list(probe.feature_info.info)


class TimmBackbone(Backbone):
    """A timm `features_only` trunk returning [P3, P4, P5] at strides 8/16/32.

    Input stays YOLO's 0..1 RGB; the trunk's mean/std normalisation is applied here from
    its pretrained_cfg (non-persistent buffers: not part of checkpoints, follow .to()).
    """

    def __init__(self, name: str, pretrained: bool | str | os.PathLike | None = None, drop_path_rate: float = 0.0):
        super().__init__()
        self.name = name
        info = _feature_info(name)
        self.out_indices = select_stride_levels([f["reduction"] for f in info], name)
        create_name, kwargs = resolve_pretrained(name, pretrained)
        local = kwargs.get("pretrained_cfg_overlay", {}).get("file")
        try:
            self.trunk = timm.create_model(create_name, features_only=True, out_indices=self.out_indices,
                                           drop_path_rate=drop_path_rate, **kwargs)
        except (KeyError, RuntimeError, ValueError) as e:
            if local is None:
                raise
            raise PretrainedWeightsMismatch(f"pretrained weights file {local} cannot be loaded into timm model "
                                            f"{name!r} ({type(e).__name__}: {str(e).splitlines()[0][:300]}): it "
                                            f"is not a {timm_architecture(name)} state dict") from e
        # what the trunk started from, for summary.json (the trainer's weights_transfer)
        self.pretrained_report: dict | None = None
        if local is not None:
            self.pretrained_report = check_pretrained_loaded(self.trunk, local, name)
        elif kwargs.get("pretrained"):
            self.pretrained_report = {"source": f"hub:{create_name}", "checked": False}
        self.out_channels = tuple(int(c) for c in self.trunk.feature_info.channels())
        cfg = getattr(self.trunk, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean") or _DEFAULT_MEAN, cfg.get("std") or _DEFAULT_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self._feature_modules = [f["module"] for f in info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.trunk((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)))

    def param_stages(self) -> tuple[dict[str, int], int]:
        """Stage index (0 = nearest the input) of every parameter, and the number of stages.

        A trunk child belongs to the first feature level at or after it, so ConvNeXt's stem
        shares stage 0 with stages.0 and resnet's conv1/bn1 share stage 0 with act1. Used for
        layer-wise learning-rate decay.
        """
        children = [n for n, _ in self.trunk.named_children()]
        bounds = sorted({children.index(m.replace(".", "_")) for m in self._feature_modules
                         if m.replace(".", "_") in children})
        if not bounds:  # unknown layout: every child is its own stage
            bounds = list(range(len(children)))
        child_stage = {}
        for i, child in enumerate(children):
            later = [k for k, b in enumerate(bounds) if b >= i]
            child_stage[child] = later[0] if later else len(bounds) - 1
        stages = {}
        for pname, _ in self.named_parameters():
            child = pname.split(".")[1]  # "trunk.<child>.<...>"
            stages[pname] = child_stage[child]
        return stages, max(child_stage.values()) + 1


def check_pretrained_loaded(trunk: torch.nn.Module, path: str | os.PathLike, name: str) -> dict:
    """Refuse a trunk whose weights are not the file's (see the module docstring).

    Compared by value (a hash of each tensor's float32 bytes), not by key: timm renames
    and reshapes keys on the way (checkpoint filters, features_only's flattened module
    names), but never changes values. Returns the JSON-able record {source, tensors,
    loaded, checked}."""
    from timm.models import load_state_dict

    def digest(t: torch.Tensor) -> int:
        return hash(t.detach().float().cpu().contiguous().numpy().tobytes())

    try:
        source = load_state_dict(str(path))
    except Exception as e:  # noqa: BLE001 - whatever timm's reader raises for a damaged file
        raise PretrainedWeightsMismatch(f"pretrained weights file {path} cannot be read ({type(e).__name__}: {e})") from e
    in_file = {digest(v) for v in source.values() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    checked = [(k, v) for k, v in trunk.state_dict().items()
               if v.is_floating_point() and v.numel() > 1 and not bool((v == v.flatten()[0]).all())]
    missing = [k for k, v in checked if digest(v) not in in_file]
    if missing or not checked:
        raise PretrainedWeightsMismatch(
            f"pretrained weights file {path} does not hold the weights of timm model {name!r}: {len(missing)} of "
            f"the {len(checked)} trunk tensors it should set are not in it (e.g. {missing[:3]}), so the trunk would "
            f"train from random init. Give a {timm_architecture(name)} state dict (timm's model.safetensors or "
            f"pytorch_model.bin of that architecture)")
    return {"source": str(path), "tensors": len(checked), "loaded": len(checked) - len(missing), "checked": True}


def build_timm_detector(name: str, nc: int = 80, neck: str = "yolov5s",
                        pretrained: bool | str | os.PathLike | None = None,
                        drop_path_rate: float = 0.0) -> YOLODetector:
    """timm trunk + ChannelAdapter + exactly the `neck` size's YOLOv5 neck and Detect head.

    The adapter maps the trunk's channels to the neck's inputs (128/256/512 for yolov5s),
    so the neck and head keep the official shapes and can take official weights.
    YOLOv5's BatchNorm settings (eps 1e-3, momentum 0.03) are those of the adapter, neck
    and head only; timm's own norm layers keep timm's settings.
    """
    size = yolov5_size(neck)
    backbone = TimmBackbone(name, pretrained=pretrained, drop_path_rate=drop_path_rate)
    yolo_neck, head = yolov5_neck_and_head(size, nc)
    model = YOLODetector(backbone, yolo_neck, head)
    mimic_stride_probe(model.adapter)  # YOLO's own layers start as the official ones do
    return model


# --------------------------------------------------------------------------- pretrained


def resolve_pretrained(name: str, pretrained: bool | str | os.PathLike | None) -> tuple[str, dict]:
    """(name for timm.create_model, its pretrained kwargs) for every way to initialise.

    None/False: random init. A local file: loaded through timm's pretrained_cfg overlay
    (`checkpoint_path=` does not work with features_only). True or a hub tag: the hub,
    after a fast check that it can be used (HF_HUB_OFFLINE, local cache, reachability).
    """
    if pretrained is None or pretrained is False:
        return name, {"pretrained": False}
    if isinstance(pretrained, (str, os.PathLike)) and _looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {str(path)!r} not found (for timm model {name!r})")
        return name, {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path.resolve())}}
    if pretrained is True:
        hub_name = name
    elif isinstance(pretrained, str):
        hub_name = _hub_name(name, pretrained)
    else:
        raise TypeError(f"pretrained must be None, a bool, a local weights file or a hub tag, got {pretrained!r}")
    ensure_hub_weights_available(hub_name)
    return hub_name, {"pretrained": True}


def _looks_like_path(p: str | os.PathLike) -> bool:
    s = os.fspath(p)
    return s.endswith(LOCAL_WEIGHT_SUFFIXES) or os.sep in s or s.startswith(("~", ".")) or Path(s).is_file()


def _hub_name(name: str, tag: str) -> str:
    """Combine the model name and a tag ('in12k_ft_in1k' or 'convnext_tiny.in12k_ft_in1k')."""
    arch = timm_architecture(name)
    if "." in tag:
        if timm_architecture(tag) != arch:
            raise ValueError(f"pretrained tag {tag!r} is for another architecture than model {name!r}")
        full = tag
    else:
        full = f"{arch}.{tag}"
    if "." in name and name != full:
        raise ValueError(f"model name {name!r} and pretrained={tag!r} name different pretrained tags")
    return full


def _hub_source(hub_name: str) -> tuple[str | None, str]:
    """(HF repo id or None, URL whose host must be reachable) of timm's default weights."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(hub_name)
    except RuntimeError as e:  # invalid tag
        raise ValueError(f"no pretrained weights {hub_name!r} in timm: {e}") from e
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"timm has no downloadable pretrained weights for {hub_name!r}; "
                         f"pass a local file as pretrained=/path/to/weights.safetensors")
    if cfg.hf_hub_id:
        from huggingface_hub import constants

        return cfg.hf_hub_id, constants.ENDPOINT  # huggingface.co, or the HF_ENDPOINT mirror
    return None, cfg.url


def _in_local_cache(repo_id: str | None, url: str) -> bool:
    if repo_id:
        from huggingface_hub import try_to_load_from_cache

        return any(isinstance(try_to_load_from_cache(repo_id, f), str)
                   for f in ("model.safetensors", "pytorch_model.bin"))
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(url).path)
    return cached.is_file()


def hub_reachable(url: str, timeout: float | None = None) -> bool:
    """One HEAD request in a daemon thread, bounded by `timeout` (DNS included)."""
    timeout = HUB_PROBE_TIMEOUT_S if timeout is None else timeout
    result: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
            result.append(True)
        except urllib.error.HTTPError:  # the server answered: reachable
            result.append(True)
        except Exception:  # noqa: BLE001 - any failure means unreachable
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def ensure_hub_weights_available(hub_name: str) -> None:
    """Fail fast, with how to use a local file, when hub weights cannot be fetched."""
    repo_id, url = _hub_source(hub_name)
    if _in_local_cache(repo_id, url):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    if not offline and hub_reachable(url):
        return
    why = "HF_HUB_OFFLINE is set" if offline else f"{urllib.parse.urlparse(url).netloc} is unreachable"
    arch = timm_architecture(hub_name)
    if repo_id:
        fetch = (f"  hf download {repo_id} model.safetensors --local-dir weights/{hub_name}\n"
                 f"  (older huggingface_hub: huggingface-cli download {repo_id} model.safetensors "
                 f"--local-dir weights/{hub_name})")
        local = f"weights/{hub_name}/model.safetensors"
    else:
        fetch = f"  curl -L -o {os.path.basename(urllib.parse.urlparse(url).path)} {url}"
        local = f"/path/to/{os.path.basename(urllib.parse.urlparse(url).path)}"
    raise PretrainedWeightsUnavailable(
        f"cannot load pretrained weights {hub_name!r} from the hub: {why} and they are not in the local cache.\n"
        f"Use a local file instead, e.g. build_model({arch!r}, nc, pretrained={local!r})\n"
        f"(any .safetensors/.pth/.bin timm state dict of {arch}); pretrained=None for a random trunk.\n"
        f"Fetch it on a machine with network:\n{fetch}")
