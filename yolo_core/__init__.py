"""yolo_core: a plain-PyTorch YOLO training core (no Hydra, no cluster code).

    from yolo_core import build_model, compute_loss, evaluate
    from yolo_core.train import TrainConfig, train
    model = build_model("yolov5s", nc=80)
"""
import os

# Spin-waiting OpenMP threads lose ~30x throughput on CPU when another process (a data
# worker, a parallel sweep job) shares the cores (measured: yolov5s step at 96 px 9.5 s vs
# 0.25 s on 2 busy cores); passive waiting costs little when they don't. Only takes effect
# if torch is not imported yet; entry points and the Makefile set it too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .eval import evaluate  # noqa: E402
from .loss import YOLOv5Loss, compute_loss, scale_loss_gains  # noqa: E402
from .models import (TransferReport, build_model, list_models, load_checkpoint_weights,  # noqa: E402
                     model_facts, transfer_weights)
from .optim import build_param_groups  # noqa: E402

__all__ = ["build_model", "list_models", "model_facts", "compute_loss", "YOLOv5Loss", "scale_loss_gains",
           "load_checkpoint_weights", "transfer_weights", "TransferReport", "build_param_groups",
           "evaluate"]
__version__ = "0.1.0"
