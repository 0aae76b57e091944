"""Evaluation: YOLOv5 NMS, box rescaling, YOLOv5 metrics and COCO evaluation.

    from yolo_core.eval import evaluate
    result = evaluate(model, val_loader, dataset.val)   # EvalResult(metrics, predictions, ...)
"""
from .boxes import clip_boxes, scale_boxes
from .coco import COCO_STAT_NAMES, coco_evaluate, records_to_coco_gt
from .evaluator import EvalResult, evaluate
from .metrics import APResult, ap_per_class, fitness, match_predictions, yolo_metrics
from .nms import non_max_suppression

__all__ = ["non_max_suppression", "scale_boxes", "clip_boxes", "match_predictions", "ap_per_class",
           "APResult", "yolo_metrics", "fitness", "COCO_STAT_NAMES", "coco_evaluate",
           "records_to_coco_gt", "EvalResult", "evaluate"]
