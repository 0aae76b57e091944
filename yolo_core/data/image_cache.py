"""Image decoding and the optional image caches (--cache ram / --cache disk of YOLOv5).

JPEG decoding is the largest cost of a training step on small models; YOLOv5 offers two
ways around it and this module reproduces both:
  ram:  keep every image already resized to imgsz in memory (uint8), after checking that
        it fits (with a 10 % margin, as YOLOv5); if it does not, warn and do not cache.
  disk: decode each original image once into a .npy beside it (or in a cache folder when
        that is not writable), written atomically so a crash or a concurrent rank never
        leaves a half-written file; later loads are a plain np.load.
An image whose pixels cannot be decoded (image_check.py: only decoding finds it) never
stops the setup of a cache: it is flagged in `failed`, a flag array in shared memory, so
the loader's worker processes and the main process see the same flags, and load() raises
UndecodableImage for it at once; the dataset decides what to show instead. A missing file
still raises ImageReadError (the storage may be gone, and may come back).
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
from collections.abc import Sequence
from multiprocessing.pool import ThreadPool
from pathlib import Path

import cv2
import numpy as np
import torch

LOGGER = logging.getLogger(__name__)

RAM_SAFETY_MARGIN = 0.1  # YOLOv5 check_cache_ram
RAM_SAMPLE = 30


class ImageReadError(OSError):
    """An image that cannot be read or decoded; the message names the file."""


class UndecodableImage(ImageReadError):
    """The file is there but its pixels cannot be decoded: a property of the file, so it is
    flagged and worked around (a missing file is not: the storage may come back)."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image as 3-channel BGR uint8 (cv2 applies the EXIF orientation, as in YOLOv5)."""
    im = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if im is None:
        if not os.path.exists(path):
            raise ImageReadError(f"cannot load image {os.fspath(path)!r}: file not found")
        raise UndecodableImage(f"cannot load image {os.fspath(path)!r}: unreadable or not an image")
    return im


def image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """Original (h, w) from the file header, EXIF rotation applied, without decoding the pixels."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            w, h = h, w
        return h, w
    except Exception:  # PIL missing or a format it cannot parse: decode instead
        return read_image(path).shape[:2]


def resize_long_side(im: np.ndarray, imgsz: int, augment: bool) -> np.ndarray:
    """Resize so the long side is imgsz, as YOLOv5 v7.0 load_image (int() of the scaled sizes).

    INTER_LINEAR when augmenting or enlarging, INTER_AREA when shrinking for evaluation
    (area averaging avoids aliasing in the images that are scored).
    """
    h0, w0 = im.shape[:2]
    if imgsz != max(h0, w0):
        h, w = resized_shape((h0, w0), imgsz)
        interp = cv2.INTER_LINEAR if (augment or imgsz > max(h0, w0)) else cv2.INTER_AREA
        im = cv2.resize(im, (w, h), interpolation=interp)
    return im


def resized_shape(hw0: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """The (h, w) resize_long_side gives an image of original size hw0, without the image."""
    h0, w0 = hw0
    r = imgsz / max(h0, w0)
    return (int(h0 * r), int(w0 * r)) if r != 1 else (h0, w0)


def default_cache_dir() -> Path:
    """Fallback folder for .npy files when the image folder is read-only ($YOLO_CORE_CACHE or ~/.cache)."""
    env = os.environ.get("YOLO_CORE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yolo_core"
    return base / "npy"


def _cache_dir_name(image: Path) -> str:
    """A name unique per image path (stems repeat across splits, e.g. train/1.jpg and val/1.jpg)."""
    digest = hashlib.sha1(os.fspath(image.resolve()).encode()).hexdigest()[:12]
    return f"{image.stem}-{digest}.npy"


def npy_path(image: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the .npy of an image lives: beside it (YOLOv5), or in cache_dir when given or needed."""
    image = Path(image)
    if cache_dir is None:
        if os.access(image.parent, os.W_OK):
            return image.with_suffix(".npy")
        cache_dir = default_cache_dir()
    return Path(cache_dir) / _cache_dir_name(image)


def save_npy_atomic(path: str | os.PathLike, arr: np.ndarray) -> None:
    """np.save through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_fresh(npy: Path, image: Path) -> bool:
    """A .npy is usable if it exists and is not older than its image (or the image is gone)."""
    try:
        t = npy.stat().st_mtime
    except FileNotFoundError:
        return False
    try:
        return t >= image.stat().st_mtime
    except FileNotFoundError:
        return True


def available_memory() -> int:
    """Bytes of memory available to new allocations (psutil when present, else /proc, else sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def ram_bytes_needed(paths: Sequence[str], imgsz: int, hw0: Sequence[tuple[int, int] | None] | None = None,
                     sample: int = RAM_SAMPLE) -> int:
    """Bytes the resized uint8 images take: exact when all original sizes are known, else from
    the headers of `sample` random images scaled to the whole set (as YOLOv5)."""
    n = len(paths)
    if n == 0:
        return 0

    def nbytes(h0: int, w0: int) -> int:
        h, w = resized_shape((h0, w0), imgsz)
        return h * w * 3

    if hw0 is not None and all(s is not None for s in hw0):
        return sum(nbytes(*s) for s in hw0)
    idx = random.Random(0).sample(range(n), min(n, sample))
    total = sum(nbytes(*image_hw(paths[i])) for i in idx)
    return int(total * n / len(idx))


class ImageStore:
    """Loads image i as YOLOv5's load_image: (resized BGR image, (h0, w0), (h, w)).

    mode None decodes every time, "ram" serves resized images from memory, "disk" decodes
    .npy files written once. Arrays returned in ram mode are the cached ones: callers must
    not modify them in place.
    """

    def __init__(self, paths: Sequence[str], imgsz: int, *, augment: bool, mode: str | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 hw0: Sequence[tuple[int, int] | None] | None = None, threads: int | None = None):
        if mode not in (None, "ram", "disk"):
            raise ValueError(f"cache must be None, 'ram' or 'disk', got {mode!r}")
        self.paths = list(paths)
        self.imgsz = imgsz
        self.augment = augment
        self.mode = mode
        self.threads = threads or min(8, os.cpu_count() or 1)
        self.npy: list[Path] | None = None
        self.ims: list[np.ndarray | None] = [None] * len(self.paths)
        self.hw0: list[tuple[int, int] | None] = [None] * len(self.paths)
        # original sizes the source stated (records' width/height): shapes without decoding
        self.known_hw0: list[tuple[int, int] | None] = list(hw0) if hw0 is not None else [None] * len(self.paths)
        self._npy_meta: dict[int, tuple[int, tuple[int, int, int]] | bool] = {}
        # 1 = pixel data could not be decoded; shared memory, so set in any loader worker
        self.failed = torch.zeros(len(self.paths), dtype=torch.uint8)
        if len(self.paths):
            self.failed.share_memory_()
        self._why: dict[int, str] = {}
        if mode == "disk":
            self._prepare_disk(cache_dir)
        elif mode == "ram":
            self._prepare_ram(hw0)

    # -- disk
    def _prepare_disk(self, cache_dir: str | os.PathLike | None) -> None:
        self.npy = [npy_path(p, cache_dir) for p in self.paths]
        todo = [i for i, (p, f) in enumerate(zip(self.paths, self.npy)) if not _npy_fresh(f, Path(p))]
        written = 0

        def write(i: int) -> int:
            try:
                im = read_image(self.paths[i])
            except UndecodableImage as e:
                self._mark_failed(i, e)
                return 0
            try:
                save_npy_atomic(self.npy[i], im)
            except OSError:  # e.g. a read-only filesystem that os.access did not reveal
                self.npy[i] = Path(cache_dir or default_cache_dir()) / _cache_dir_name(Path(self.paths[i]))
                save_npy_atomic(self.npy[i], im)
            return im.nbytes

        if todo:
            with ThreadPool(self.threads) as pool:
                written = sum(pool.imap(write, todo))
        LOGGER.info("disk image cache: %d of %d images written to .npy (%.2f GB), %d reused",
                    len(todo), len(self.paths), written / 1e9, len(self.paths) - len(todo))

    # -- ram
    def _prepare_ram(self, hw0: Sequence[tuple[int, int] | None] | None) -> None:
        need = ram_bytes_needed(self.paths, self.imgsz, hw0)
        avail = available_memory()
        LOGGER.info("ram image cache: %.2f GB needed (+%d%% margin), %.2f GB available",
                    need / 1e9, int(RAM_SAFETY_MARGIN * 100), avail / 1e9)
        if need * (1 + RAM_SAFETY_MARGIN) > avail:
            LOGGER.warning("ram image cache: %.2f GB needed but only %.2f GB available; images will NOT be "
                           "cached in ram", need * (1 + RAM_SAFETY_MARGIN) / 1e9, avail / 1e9)
            self.mode = None
            return

        def load(i: int) -> None:
            try:
                im, self.hw0[i] = self._decode_resized(i)
            except UndecodableImage as e:
                self._mark_failed(i, e)
                return
            self.ims[i] = im

        with ThreadPool(self.threads) as pool:
            for _ in pool.imap(load, range(len(self.paths))):
                pass
        LOGGER.info("ram image cache: %d images, %.2f GB", len(self.paths),
                    sum(im.nbytes for im in self.ims if im is not None) / 1e9)

    # -- failures
    def _mark_failed(self, i: int, err: Exception) -> None:
        self.failed[i] = 1
        self._why[i] = str(err)

    def failed_indices(self) -> list[int]:
        """Images whose pixels could not be decoded, as far as any process has found."""
        return self.failed.nonzero().flatten().tolist()

    def _raise_failed(self, i: int) -> None:
        raise UndecodableImage(self._why.get(i) or f"cannot load image {self.paths[i]!r}: its pixel data could "
                                                  f"not be decoded (found earlier)")

    # -- loading
    def original(self, i: int) -> np.ndarray:
        """The decoded original image (from its .npy in disk mode).

        (A read-only memory map, so that the mosaic would touch only the rows it copies,
        measured 12% slower than reading the whole file: page faults cost more here.)"""
        if self.npy is not None:
            try:
                rows = self._npy_rows(i, 0, None)
                if rows is not None:
                    return rows
                return np.load(self.npy[i], allow_pickle=False)
            except (OSError, ValueError):  # vanished or damaged cache file: decode the image
                LOGGER.warning("image cache %s unreadable, decoding %s", self.npy[i], self.paths[i])
        return read_image(self.paths[i])

    def _npy_header(self, i: int) -> tuple[int, tuple[int, int, int]] | None:
        """(data offset, (h, w, c)) of .npy i if it is a plain C-order uint8 HWC array, parsed
        once per file and remembered; None if it is anything else (np.load reads those)."""
        meta = self._npy_meta.get(i)
        if meta is None:
            with open(self.npy[i], "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f)
                plain = dtype == np.uint8 and not fortran and len(shape) == 3
                meta = (f.tell(), tuple(shape)) if plain else False
            self._npy_meta[i] = meta
        return meta or None

    def _npy_rows(self, i: int, r1: int, r2: int | None) -> np.ndarray | None:
        """Rows r1:r2 of the original image i straight from its .npy (one seek and one read
        into a fresh array: ~40% cheaper than np.load, and the mosaic reads only the rows
        its warp samples); None where the file is not a plain uint8 array."""
        meta = self._npy_header(i)
        if meta is None:
            return None
        offset, (h, w, c) = meta
        r2 = h if r2 is None else min(r2, h)
        r1 = max(0, min(r1, r2))
        out = np.empty((r2 - r1, w, c), np.uint8)
        with open(self.npy[i], "rb", buffering=0) as f:
            f.seek(offset + r1 * w * c)
            n = f.readinto(memoryview(out).cast("B")) if out.size else 0
        if n != out.nbytes:
            self._npy_meta.pop(i, None)
            raise ValueError(f"{self.npy[i]}: short read ({n} of {out.nbytes} bytes)")
        return out

    def load_rows(self, i: int, r1: int, r2: int) -> tuple[np.ndarray, int, tuple[int, int]] | None:
        """(rows r1:r2 of the image load(i) would return, r1, (h0, w0)), read without the
        rest of the image: only in disk mode, for an image that needs no resizing (the long
        side already imgsz, e.g. COCO at 640); None otherwise (call load)."""
        if self.npy is None or self.ims[i] is not None or self.failed[i]:
            return None
        hw0 = self.hw0[i] or self.known_hw0[i]
        if hw0 is None or resized_shape(hw0, self.imgsz) != tuple(hw0):
            return None
        r1, r2 = max(0, min(r1, hw0[0])), max(0, min(r2, hw0[0]))
        try:
            meta = self._npy_header(i)
            if meta is None or meta[1][:2] != tuple(hw0):
                return None
            rows = self._npy_rows(i, r1, max(r1, r2))
        except (OSError, ValueError):
            return None  # load() then reports and falls back to decoding
        return None if rows is None else (rows, r1, tuple(hw0))

    def _decode_resized(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        im = self.original(i)
        return resize_long_side(im, self.imgsz, self.augment), im.shape[:2]

    def load(self, i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """(resized image, (h0, w0), (h, w)) of image i."""
        im = self.ims[i]
        if im is not None:
            return im, self.hw0[i], im.shape[:2]
        if self.failed[i]:
            self._raise_failed(i)
        try:
            im, hw0 = self._decode_resized(i)
        except UndecodableImage as e:
            self._mark_failed(i, e)
            raise
        self.hw0[i] = hw0
        return im, hw0, im.shape[:2]

    def shape(self, i: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """((h0, w0), (h, w)) of image i as load(i) would return them, without decoding it;
        None when neither a cache, an earlier load nor the source knows the size."""
        im = self.ims[i]
        if im is not None:
            return self.hw0[i], im.shape[:2]
        hw0 = self.hw0[i] or self.known_hw0[i]
        if hw0 is None:
            return None
        return hw0, resized_shape(hw0, self.imgsz)
