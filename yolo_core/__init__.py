"""yolo_core: a plain-PyTorch YOLO training core (no Hydra, no cluster code).

    from yolo_core import build_model, compute_loss
    model = build_model("yolov5s", nc=80)
"""
from .loss import YOLOv5Loss, compute_loss, scale_loss_gains
from .models import build_model, list_models, model_facts

__all__ = ["build_model", "list_models", "model_facts", "compute_loss", "YOLOv5Loss", "scale_loss_gains"]
__version__ = "0.1.0"

from .models import TransferReport, load_checkpoint_weights, transfer_weights  # noqa: E402
from .optim import build_param_groups  # noqa: E402

__all__ += ["load_checkpoint_weights", "transfer_weights", "TransferReport", "build_param_groups"]
