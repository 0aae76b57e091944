"""The training/validation Dataset: YOLOv5 v7.0 LoadImagesAndLabels over parsed records.

It turns ImageRecords into (image, labels, index, shapes) items exactly as YOLOv5's
__getitem__ does (mosaic + random_perspective + mixup + hsv + flips when augmenting,
letterbox otherwise, rect batches for evaluation), so results stay comparable with the
official training. Randomness comes from the dataset's own `random.Random` and
`np.random.RandomState`; the sampler of build_dataloader hands every item a seed, which
makes each augmented item a function of (seed, epoch, position) whatever the number of
workers, and so makes resumed runs replay the same batches.

An image whose pixels cannot be decoded (a valid header over garbage: the scan reads
only headers of train images, image_check.py) must not stop a run mid-epoch, nor again at
every resume. When augmenting, an item that needs such an image is replaced by the item
of the next index with a seed derived from its own, which depends only on the files, so
resumed runs still replay the same batches; without augmentation (validation) the image
is a blank of its size, so it is scored with no detections. Either way it is counted as
corrupt_image in split.skipped (summary.json's data_warnings) with a warning naming it,
by report_load_failures: the loader calls it after every pass (loader.py).
"""
from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from .augment import (PAD_VALUE, augment_hsv, flip_lr, flip_ud, hwc_bgr_to_chw_rgb, letterbox, mixup, perspective_matrix,
                      random_perspective, source_window, warp_with_matrix, xywhn2xyxy, xyxy2xywhn)
from .image_cache import ImageReadError, ImageStore, UndecodableImage, image_hw, resized_shape
from .mosaic import build_mosaic_window, mosaic_centre_range
from .records import DatasetSplit, ImageRecord
from .skips import SkipLog

LOGGER = logging.getLogger(__name__)


# hyp.scratch-low.yaml, augmentation part
DEFAULT_HYP: dict[str, float] = {
    "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4,
    "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
    "flipud": 0.0, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "copy_paste": 0.0,
}

Shapes = tuple[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]]


def record_hw(record: ImageRecord) -> tuple[int, int]:
    """Original (h, w) of a record: as stated by the source, else read from the image header."""
    if record.height is not None and record.width is not None:
        return int(record.height), int(record.width)
    return image_hw(record.path)


def rect_batches(hw0: np.ndarray, batch_size: int, imgsz: int, stride: int = 32, pad: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5 rectangular batches: (order, batch index per sorted item, batch shapes (nb, 2) as (h, w)).

    Images are sorted by aspect ratio h/w so each batch holds similar shapes; a batch whose
    images are all landscape gets shape [max h/w, 1], all portrait [1, 1 / min h/w], mixed
    [1, 1]; times imgsz / stride, plus pad, rounded up to a multiple of stride. Padding to the
    batch instead of to a square saves compute and changes no pixel of the image itself.
    """
    hw0 = np.asarray(hw0, dtype=np.float64).reshape(-1, 2)
    n = len(hw0)
    bi = np.floor(np.arange(n) / batch_size).astype(int)
    nb = int(bi[-1]) + 1 if n else 0
    ar = hw0[:, 0] / hw0[:, 1]
    order = ar.argsort()  # numpy's default sort, as YOLOv5, so ties break the same way
    ar = ar[order]
    shapes = [[1.0, 1.0]] * nb
    for i in range(nb):
        ari = ar[bi == i]
        mini, maxi = ari.min(), ari.max()
        if maxi < 1:
            shapes[i] = [maxi, 1.0]
        elif mini > 1:
            shapes[i] = [1.0, 1.0 / mini]
    shapes = np.array(shapes, dtype=np.float64).reshape(-1, 2)
    batch_shapes = np.ceil(shapes * imgsz / stride + pad).astype(int) * stride
    return order, bi, batch_shapes


class YOLODataset(Dataset):
    """Records -> (img uint8 (3, H, W) RGB, labels float32 (n, 6) [0, cls, x, y, w, h], index, shapes).

    labels are normalised to the returned image; index is the position in self.records
    (which, in rect mode, are sorted by aspect ratio and so differ in order from
    split.records); shapes is ((h0, w0), ((h / h0, w / w0), (padw, padh))) for scaling
    predictions back to the original image, ((h0, w0), ((1, 1), (0, 0))) for mosaics.
    Index with an int, or with (int, seed) to make the item's augmentation a function of seed.
    """

    def __init__(self, split: DatasetSplit, imgsz: int = 640, *, augment: bool = False,
                 hyp: Mapping[str, float] | None = None, rect: bool = False, batch_size: int = 16,
                 stride: int = 32, pad: float = 0.0, cache: str | None = None,
                 cache_dir: str | Path | None = None, seed: int = 0):
        self.split = split
        self.imgsz = int(imgsz)
        self.augment = augment
        self.hyp: dict[str, float] = {**DEFAULT_HYP, **{k: float(v) for k, v in (hyp or {}).items()
                                                       if k in DEFAULT_HYP and v is not None}}
        self.rect = rect
        self.mosaic = augment and not rect  # YOLOv5: rect training loads single images
        self.batch_size = batch_size
        self.stride = stride
        self.pad = pad
        self.seed = seed

        records: list[ImageRecord] = split.records
        known_hw: list[tuple[int, int] | None] = [
            (int(r.height), int(r.width)) if r.height is not None and r.width is not None else None
            for r in records]
        self.batch_shapes: np.ndarray | None = None
        self.batch: np.ndarray | None = None
        if rect:
            hw0 = np.array([hw if hw is not None else record_hw(r) for hw, r in zip(known_hw, records)])
            order, self.batch, self.batch_shapes = rect_batches(hw0, batch_size, self.imgsz, stride, pad)
            records = [records[i] for i in order]
            known_hw = [tuple(int(v) for v in hw0[i]) for i in order]
        self.records: list[ImageRecord] = records
        self.labels: list[np.ndarray] = [np.asarray(r.labels, dtype=np.float32).reshape(-1, 5) for r in records]
        self.store = ImageStore([r.path for r in records], self.imgsz, augment=augment, mode=cache,
                                cache_dir=cache_dir, hw0=known_hw)
        self._rng = random.Random(seed)
        self._nprng = np.random.RandomState(seed % 2 ** 32)
        self._canvas: np.ndarray | None = None  # mosaic canvas, reused (see _load_mosaic)
        self._reported: set[int] = set()  # undecodable images already counted (main process)
        self.report_load_failures()  # those a ram/disk cache found while filling itself

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Reset the dataset's generators (worker_init_fn does this with each worker's seed)."""
        self._rng.seed(seed)
        self._nprng.seed(seed % 2 ** 32)

    def load_image(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """(BGR image resized so the long side is imgsz, (h0, w0), (h, w)); do not modify it in place.

        An undecodable image raises UndecodableImage when augmenting (__getitem__ replaces the
        item) and is a blank (PAD_VALUE) image of its size otherwise (see the module docstring)."""
        try:
            return self.store.load(i)
        except UndecodableImage:
            if self.augment:
                raise
            shape = self.store.shape(i)
            if shape is None:
                hw0 = record_hw(self.records[i])
                shape = (hw0, resized_shape(hw0, self.imgsz))
            (h0, w0), (h, w) = shape
            return np.full((h, w, 3), PAD_VALUE, np.uint8), (h0, w0), (h, w)

    def report_load_failures(self) -> int:
        """Count images found undecodable since the last call (by any worker: the flags are in
        shared memory) into split.skipped as corrupt_image, with one warning naming them.
        Returns how many were new. Call it in the process that reports (the trainer's)."""
        new = [i for i in self.store.failed_indices() if i not in self._reported]
        if not new:
            return 0
        what = ("its items are replaced by the next decodable image's" if self.augment
                else "scored as a blank image: its boxes count as missed")
        skips = SkipLog(self.split.name, "the images decoded while loading")
        for i in new:
            skips.add("corrupt_image", self.records[i].path, f"the pixel data cannot be decoded; {what}")
        skips.emit(LOGGER)
        self._reported.update(new)
        self.split.skipped["corrupt_image"] = self.split.skipped.get("corrupt_image", 0) + len(new)
        return len(new)

    def _load_mosaic(self, index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Mosaic of `index` and 3 random images, warped to imgsz x imgsz; also the (h0, w0) of `index`.

        The random draws are YOLOv5's, in its order; only the perspective matrix is drawn
        before the images are read (reading draws nothing, so the sequence is the same).
        Knowing the matrix first, only the canvas region the warp samples is painted and
        images outside it are not even decoded (build_mosaic_window): the same pixels as
        painting the whole 2s x 2s canvas, for a fraction of the copies and decodes.
        """
        rng, hyp, s = self._rng, self.hyp, self.imgsz
        lo, hi = mosaic_centre_range(s)
        yc, xc = (int(rng.uniform(lo, hi)) for _ in range(2))
        indices = [index] + rng.choices(range(len(self)), k=3)
        rng.shuffle(indices)
        border = (-s // 2, -s // 2)
        M, scale, size = perspective_matrix((2 * s, 2 * s), degrees=hyp["degrees"], translate=hyp["translate"],
                                            scale=hyp["scale"], shear=hyp["shear"], perspective=hyp["perspective"],
                                            border=border, rng=rng)
        known = [self.store.shape(i) for i in indices]
        loaded: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        hw0_of: dict[int, tuple[int, int]] = {}

        def load(k: int, rows: tuple[int, int] | None = None) -> tuple[np.ndarray, int, tuple[int, int]]:
            if k not in loaded and rows is not None:  # the disk cache reads just these rows
                part = self.store.load_rows(indices[k], *rows)
                if part is not None:
                    img, row0, hw0_of[k] = part
                    return img, row0, hw0_of[k]
            if k not in loaded:
                img, h0w0, _ = self.load_image(indices[k])
                loaded[k] = (img, h0w0)
            img = loaded[k][0]
            return img, 0, img.shape[:2]

        if any(k is None for k in known):  # sizes unknown to the source: decode to learn them
            for k in range(4):
                load(k)
            known = [(loaded[k][1], loaded[k][0].shape[:2]) for k in range(4)]
        if hyp["perspective"]:  # a projective warp: paint the whole canvas
            window = (0, 0, 2 * s, 2 * s)
        else:
            window = source_window(M, size, (2 * s, 2 * s))
        canvas, labels4 = build_mosaic_window([hw for _, hw in known], [self.labels[i] for i in indices], load,
                                              s, xc, yc, window, self._canvas)
        self._canvas = canvas  # reused by the next mosaic (build_mosaic_window allocates it once)
        img4, labels4 = warp_with_matrix(canvas, labels4, M, scale, size, perspective=bool(hyp["perspective"]),
                                         border=border)
        k0 = indices.index(index)
        hw0 = loaded[k0][1] if k0 in loaded else hw0_of.get(k0, known[k0][0])
        return img4, labels4, hw0

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, Shapes]:
        item_seed = None
        if isinstance(index, (tuple, list)):
            index, item_seed = index
        index, n = int(index), len(self)
        for attempt in range(n):  # attempt 0 is the item itself; more only for undecodable images
            if item_seed is not None:
                self.reseed(int(item_seed) + attempt)
            try:
                return self._item(index)
            except UndecodableImage as e:  # only when augmenting (load_image)
                last = e
                index = (index + 1) % n
        raise ImageReadError(f"no image of split {self.split.name!r} can be decoded (the last tried: {last})")

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, Shapes]:
        rng, nprng, hyp = self._rng, self._nprng, self.hyp

        if self.mosaic and rng.random() < hyp["mosaic"]:
            img, labels, (h0, w0) = self._load_mosaic(index)
            shapes: Shapes = ((h0, w0), ((1.0, 1.0), (0.0, 0.0)))
            if rng.random() < hyp["mixup"]:
                img2, labels2, _ = self._load_mosaic(rng.randint(0, len(self) - 1))
                img, labels = mixup(img, labels, img2, labels2, nprng=nprng)
        else:
            img, (h0, w0), (h, w) = self.load_image(index)
            shape = tuple(int(v) for v in self.batch_shapes[self.batch[index]]) if self.rect else self.imgsz
            img, ratio, pad = letterbox(img, shape, auto=False, scaleup=self.augment)
            shapes = ((h0, w0), ((h / h0, w / w0), pad))
            labels = self.labels[index].copy()
            if labels.size:
                labels[:, 1:] = xywhn2xyxy(labels[:, 1:], ratio[0] * w, ratio[1] * h, padw=pad[0], padh=pad[1])
            if self.augment:
                img, labels = random_perspective(img, labels, degrees=hyp["degrees"], translate=hyp["translate"],
                                                 scale=hyp["scale"], shear=hyp["shear"],
                                                 perspective=hyp["perspective"], rng=rng)

        nl = len(labels)
        if nl:
            labels[:, 1:5] = xyxy2xywhn(labels[:, 1:5], w=img.shape[1], h=img.shape[0], clip=True, eps=1e-3)
        if self.augment:  # (Albumentations of YOLOv5 is optional and not used here)
            augment_hsv(img, hgain=hyp["hsv_h"], sgain=hyp["hsv_s"], vgain=hyp["hsv_v"], nprng=nprng)
            if rng.random() < hyp["flipud"]:
                img, labels = flip_ud(img, labels)
            if rng.random() < hyp["fliplr"]:
                img, labels = flip_lr(img, labels)

        labels_out = torch.zeros((nl, 6), dtype=torch.float32)
        if nl:
            labels_out[:, 1:] = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))
        return torch.from_numpy(hwc_bgr_to_chw_rgb(img)), labels_out, index, shapes

    @staticmethod
    def collate_fn(batch: Sequence[tuple[torch.Tensor, torch.Tensor, int, Any]]
                   ) -> tuple[torch.Tensor, torch.Tensor, list[int], list[Any]]:
        """Stack images; concatenate labels with column 0 = the item's position in the batch.

        The images go through torch's default_collate: in a loader worker it stacks them
        straight into shared memory, so sending the batch to the main process copies
        nothing more (20 MB per batch of 16 at 640).
        """
        ims, labels, indices, shapes = zip(*batch)
        for i, lb in enumerate(labels):
            lb[:, 0] = i
        return default_collate(list(ims)), torch.cat(labels, 0), list(indices), list(shapes)
