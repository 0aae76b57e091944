"""Geometric and colour augmentation of one image and its boxes, as YOLOv5 v7.0 does it.

Everything works on HWC BGR uint8 images (cv2's layout) and label arrays whose rows are
[cls, x1, y1, x2, y2] in pixels unless a function says otherwise. Random draws come from
`rng` (a `random.Random`, or the `random` module) and `nprng` (a `np.random.RandomState`,
or the `np.random` module), called in the same order as the official code, so that the
dataset can make every item reproducible by reseeding its own generators.
"""
from __future__ import annotations

import math
import random
from types import ModuleType
from typing import Union

import cv2
import numpy as np

PAD_VALUE = 114  # YOLOv5's grey for letterbox borders, mosaic canvas and warp borders

PyRng = Union[random.Random, ModuleType]
NpRng = Union[np.random.RandomState, ModuleType]


# ---------------------------------------------------------------- box formats

def xywhn2xyxy(x: np.ndarray, w: float, h: float, padw: float = 0.0, padh: float = 0.0) -> np.ndarray:
    """Normalised [xc, yc, w, h] -> pixel [x1, y1, x2, y2] in an image of size (w, h) placed at (padw, padh)."""
    y = np.copy(x)
    y[:, 0] = w * (x[:, 0] - x[:, 2] / 2) + padw
    y[:, 1] = h * (x[:, 1] - x[:, 3] / 2) + padh
    y[:, 2] = w * (x[:, 0] + x[:, 2] / 2) + padw
    y[:, 3] = h * (x[:, 1] + x[:, 3] / 2) + padh
    return y


def xyxy2xywhn(x: np.ndarray, w: float, h: float, clip: bool = False, eps: float = 0.0) -> np.ndarray:
    """Pixel [x1, y1, x2, y2] -> normalised [xc, yc, w, h]; with clip, boxes are first clipped to (w - eps, h - eps).

    The eps keeps a box touching the border from normalising to exactly 1.0 after float
    rounding (YOLOv5 uses 1e-3).
    """
    if clip:
        x = x.copy()
        x[:, [0, 2]] = x[:, [0, 2]].clip(0, w - eps)
        x[:, [1, 3]] = x[:, [1, 3]].clip(0, h - eps)
    y = np.copy(x)
    y[:, 0] = ((x[:, 0] + x[:, 2]) / 2) / w
    y[:, 1] = ((x[:, 1] + x[:, 3]) / 2) / h
    y[:, 2] = (x[:, 2] - x[:, 0]) / w
    y[:, 3] = (x[:, 3] - x[:, 1]) / h
    return y


# ---------------------------------------------------------------- letterbox

def letterbox(im: np.ndarray, new_shape: int | tuple[int, int] = (640, 640), color: tuple[int, int, int] = (
        PAD_VALUE, PAD_VALUE, PAD_VALUE), auto: bool = True, scale_fill: bool = False, scaleup: bool = True,
              stride: int = 32) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize keeping the aspect ratio, then pad to `new_shape` (h, w).

    Returns (image, (ratio_w, ratio_h), (padw, padh)); padw/padh are the per-side float
    paddings (half the total), which is what boxes must be shifted by. scaleup=False only
    shrinks (YOLOv5 validation: upscaling would invent pixels and skew mAP).
    """
    shape = im.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    ratio = r, r
    new_unpad = int(round(shape[1] * r)), int(round(shape[0] * r))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:  # minimum rectangle: pad only up to the next stride multiple
        dw, dh = np.mod(dw, stride), np.mod(dh, stride)
    elif scale_fill:  # stretch
        dw, dh = 0.0, 0.0
        new_unpad = (new_shape[1], new_shape[0])
        ratio = new_shape[1] / shape[1], new_shape[0] / shape[0]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        im = cv2.resize(im, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return im, ratio, (float(dw), float(dh))


# ---------------------------------------------------------------- random perspective

def box_candidates(box1: np.ndarray, box2: np.ndarray, wh_thr: float = 2, ar_thr: float = 100,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Which boxes survive a warp: box1 (4, n) before (already scaled), box2 (4, n) after, xyxy pixels.

    Keeps boxes wider and taller than wh_thr px, with at least area_thr of their scaled area
    left after clipping, and an aspect ratio below ar_thr: slivers cut off at the border
    would teach the model to find objects that are not visible.
    """
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def random_perspective(im: np.ndarray, targets: np.ndarray, degrees: float = 10, translate: float = 0.1,
                       scale: float = 0.1, shear: float = 10, perspective: float = 0.0,
                       border: tuple[int, int] = (0, 0), rng: PyRng = random) -> tuple[np.ndarray, np.ndarray]:
    """Warp with M = T @ S @ R @ P @ C and move the boxes with it.

    targets: (n, 5) [cls, x1, y1, x2, y2] pixels. border (h, w) is added on each side of the
    output (negative for mosaic: a 2s canvas with border -s/2 gives an s x s output).
    Boxes: the 4 corners are transformed, their min/max taken and clipped to the output;
    box_candidates drops what the warp destroyed. Returns (image, surviving targets).
    """
    height = im.shape[0] + border[0] * 2
    width = im.shape[1] + border[1] * 2

    C = np.eye(3)  # centre the image on the origin
    C[0, 2] = -im.shape[1] / 2
    C[1, 2] = -im.shape[0] / 2

    P = np.eye(3)
    P[2, 0] = rng.uniform(-perspective, perspective)
    P[2, 1] = rng.uniform(-perspective, perspective)

    R = np.eye(3)
    a = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1 + scale)
    R[:2] = cv2.getRotationMatrix2D(angle=a, center=(0, 0), scale=s)

    S = np.eye(3)
    S[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    S[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)

    T = np.eye(3)
    T[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * width
    T[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * height

    M = T @ S @ R @ P @ C  # right to left: centre, perspective, rotate/scale, shear, translate
    if border[0] != 0 or border[1] != 0 or (M != np.eye(3)).any():
        if perspective:
            im = cv2.warpPerspective(im, M, dsize=(width, height), borderValue=(PAD_VALUE,) * 3)
        else:
            im = cv2.warpAffine(im, M[:2], dsize=(width, height), borderValue=(PAD_VALUE,) * 3)

    n = len(targets)
    if n:
        xy = np.ones((n * 4, 3))
        xy[:, :2] = targets[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)  # x1y1, x2y2, x1y2, x2y1
        xy = xy @ M.T
        xy = (xy[:, :2] / xy[:, 2:3] if perspective else xy[:, :2]).reshape(n, 8)
        x = xy[:, [0, 2, 4, 6]]
        y = xy[:, [1, 3, 5, 7]]
        new = np.concatenate((x.min(1), y.min(1), x.max(1), y.max(1))).reshape(4, n).T
        new[:, [0, 2]] = new[:, [0, 2]].clip(0, width)
        new[:, [1, 3]] = new[:, [1, 3]].clip(0, height)
        i = box_candidates(box1=targets[:, 1:5].T * s, box2=new.T, area_thr=0.10)
        targets = targets[i]
        targets[:, 1:5] = new[i]
    return im, targets


# ---------------------------------------------------------------- colour, mixup, flips

def augment_hsv(im: np.ndarray, hgain: float = 0.5, sgain: float = 0.5, vgain: float = 0.5,
                nprng: NpRng = np.random) -> None:
    """Random hue/saturation/value gains, in place on a BGR uint8 image.

    Gains g = 1 + U(-1, 1) * [hgain, sgain, vgain] are applied through 256-entry lookup
    tables on cv2's HSV (H in [0, 180)): H = (x * g) mod 180, S and V = clip(x * g, 0, 255).
    The LUT is what YOLOv5 does and is much cheaper than float arithmetic on every pixel.
    """
    if hgain or sgain or vgain:
        r = nprng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
        hue, sat, val = cv2.split(cv2.cvtColor(im, cv2.COLOR_BGR2HSV))
        dtype = im.dtype
        x = np.arange(0, 256, dtype=r.dtype)
        lut_hue = ((x * r[0]) % 180).astype(dtype)
        lut_sat = np.clip(x * r[1], 0, 255).astype(dtype)
        lut_val = np.clip(x * r[2], 0, 255).astype(dtype)
        im_hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
        cv2.cvtColor(im_hsv, cv2.COLOR_HSV2BGR, dst=im)


def mixup(im: np.ndarray, labels: np.ndarray, im2: np.ndarray, labels2: np.ndarray,
          nprng: NpRng = np.random) -> tuple[np.ndarray, np.ndarray]:
    """Blend two images with r ~ Beta(32, 32) (close to 0.5) and keep the labels of both."""
    r = nprng.beta(32.0, 32.0)
    im = (im * r + im2 * (1 - r)).astype(np.uint8)
    return im, np.concatenate((labels, labels2), 0)


def flip_ud(im: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip upside down; labels are normalised [cls, x, y, w, h] so only y mirrors."""
    im = np.flipud(im)
    if len(labels):
        labels = labels.copy()
        labels[:, 2] = 1 - labels[:, 2]
    return im, labels


def flip_lr(im: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; labels are normalised [cls, x, y, w, h] so only x mirrors."""
    im = np.fliplr(im)
    if len(labels):
        labels = labels.copy()
        labels[:, 1] = 1 - labels[:, 1]
    return im, labels
