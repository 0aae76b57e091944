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
    M, s, size = perspective_matrix(im.shape[:2], degrees=degrees, translate=translate, scale=scale, shear=shear,
                                    perspective=perspective, border=border, rng=rng)
    return warp_with_matrix(im, targets, M, s, size, perspective=bool(perspective), border=border)


def perspective_matrix(shape: tuple[int, int], degrees: float = 10, translate: float = 0.1, scale: float = 0.1,
                       shear: float = 10, perspective: float = 0.0, border: tuple[int, int] = (0, 0),
                       rng: PyRng = random) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The random draws of random_perspective, in the official order, for an image of `shape`
    (h, w): returns (M 3x3, the scale drawn, output (width, height)).

    Split from the warp so that the mosaic can know, before it reads any image, which part
    of its canvas the warp will sample (source_window)."""
    height = shape[0] + border[0] * 2
    width = shape[1] + border[1] * 2

    C = np.eye(3)  # centre the image on the origin
    C[0, 2] = -shape[1] / 2
    C[1, 2] = -shape[0] / 2

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
    return M, s, (width, height)


def warp_with_matrix(im: np.ndarray, targets: np.ndarray, M: np.ndarray, s: float, size: tuple[int, int],
                     perspective: bool = False, border: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """The deterministic half of random_perspective: warp `im` to `size` (w, h) with M and
    move, clip and filter the boxes (see random_perspective)."""
    width, height = size
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


def source_window(M: np.ndarray, size: tuple[int, int], shape: tuple[int, int], margin: int = 3
                  ) -> tuple[int, int, int, int]:
    """The (x1, y1, x2, y2) region of a source image of `shape` (h, w) that an affine warp to
    `size` (w, h) with M reads, clipped to the image; empty (x1 >= x2) if it reads none.

    Pixels outside it never influence the warped image (bilinear interpolation reads the
    two neighbours of each mapped coordinate; `margin` covers OpenCV's fixed-point
    rounding), so they need not be drawn: the mosaic leaves them unfilled, bit-exactly.
    """
    width, height = size
    inv = np.linalg.inv(M)
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float)
    src = corners @ inv.T
    src = src[:, :2] / src[:, 2:3]
    x1, y1 = np.floor(src.min(0)).astype(int) - margin
    x2, y2 = np.floor(src.max(0)).astype(int) + margin + 2
    h, w = shape
    return max(int(x1), 0), max(int(y1), 0), min(int(x2), w), min(int(y2), h)


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


def hwc_bgr_to_chw_rgb(im: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 -> contiguous CHW RGB, what the model batches are made of.

    cv2.split into the three output planes (in reverse order) is ~5x faster than a
    transposed copy with numpy; a non-contiguous input is made contiguous first.
    """
    if im.ndim != 3 or im.shape[2] != 3:
        return np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])
    im = np.ascontiguousarray(im)
    out = np.empty((3, im.shape[0], im.shape[1]), np.uint8)
    cv2.split(im, [out[2], out[1], out[0]])
    return out


def mixup(im: np.ndarray, labels: np.ndarray, im2: np.ndarray, labels2: np.ndarray,
          nprng: NpRng = np.random) -> tuple[np.ndarray, np.ndarray]:
    """Blend two images with r ~ Beta(32, 32) (close to 0.5) and keep the labels of both."""
    r = nprng.beta(32.0, 32.0)
    im = (im * r + im2 * (1 - r)).astype(np.uint8)
    return im, np.concatenate((labels, labels2), 0)


def flip_ud(im: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip upside down; labels are normalised [cls, x, y, w, h] so only y mirrors.

    (cv2.flip returns a contiguous copy: a flipped view would make the CHW conversion
    that follows 10x slower.)"""
    im = cv2.flip(im, 0)
    if len(labels):
        labels = labels.copy()
        labels[:, 2] = 1 - labels[:, 2]
    return im, labels


def flip_lr(im: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; labels are normalised [cls, x, y, w, h] so only x mirrors (see flip_ud)."""
    im = cv2.flip(im, 1)
    if len(labels):
        labels = labels.copy()
        labels[:, 1] = 1 - labels[:, 1]
    return im, labels
