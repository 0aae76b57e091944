"""Generated benchmark data, written once into a cache folder and reused.

- `jpeg_set`: 512 JPEGs of 640x480 with 5-30 boxes each, the set the official figures
  were measured on (YOLO layout: images/ + labels/ + data.yaml). The pictures are smooth
  colour fields with textured shapes and sensor-like noise so that a JPEG weighs about
  like a photo of that size (~110 kB at quality 90, measured): decoding time depends
  on the entropy of the file, and flat synthetic images would decode unrealistically fast.
- `index_set`: 118,287 label files (COCO train2017's count) with 1-15 rows each, beside
  tiny 32x32 JPEGs (indexing reads only an image's header and its last bytes, never the
  pixels, so the image size does not matter to it; 32 px passes the 10 px minimum).

Each set is built in a temporary folder and renamed into place, so an interrupted
generation is never mistaken for a complete one.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import yaml

N_CLASSES = 80
JPEG_QUALITY = 90
COCO_TRAIN_IMAGES = 118_287


def default_cache_dir() -> Path:
    """<repo>/.cache/bench (ignored by git), or $YOLO_BENCH_CACHE."""
    env = os.environ.get("YOLO_BENCH_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".cache" / "bench"


def _atomic_dir(final: Path, build) -> Path:
    """Run build(tmp_dir) and rename tmp_dir to `final`; reuse `final` if it is complete."""
    if (final / ".complete").is_file():
        return final
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _names() -> list[str]:
    return [f"class{i}" for i in range(N_CLASSES)]


def _draw_image(rng: np.random.Generator, w: int = 640, h: int = 480) -> tuple[np.ndarray, list[list[float]]]:
    """A photo-like BGR image and its YOLO rows [cls, xc, yc, w, h] (normalised)."""
    # smooth colour field: a low-resolution random image upsampled (sky, walls, ground)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    # mid-frequency texture (foliage, fabric) over the whole image
    tex = cv2.resize(rng.integers(-40, 40, (h // 4, w // 4, 1), dtype=np.int16).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR)
    im += tex.astype(np.int16)[..., None]
    rows = []
    for _ in range(int(rng.integers(5, 31))):
        bw, bh = (int(v) for v in rng.integers(12, 200, 2))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        colour = rng.integers(0, 256, 3).astype(np.int16)
        patch = im[y1:y1 + bh, x1:x1 + bw]
        stripes = (np.arange(bw)[None, :] // max(2, bw // 8) % 2) * 30
        patch[:] = colour + stripes[..., None]
        rows.append([int(rng.integers(0, N_CLASSES)), (x1 + bw / 2) / w, (y1 + bh / 2) / h, bw / w, bh / h])
    im += rng.normal(0, 9, im.shape).astype(np.int16)  # sensor noise: what makes JPEGs heavy
    return np.clip(im, 0, 255).astype(np.uint8), rows


def jpeg_set(cache_dir: Path | None = None, n: int = 512, seed: int = 0) -> Path:
    """The 640x480 JPEG set; returns its data.yaml (train and val are the same images)."""
    root = (cache_dir or default_cache_dir()) / f"jpeg{n}-s{seed}"

    def build(tmp: Path) -> None:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        rng = np.random.default_rng(seed)
        for i in range(n):
            im, rows = _draw_image(rng)
            cv2.imwrite(str(tmp / "images" / f"{i:012d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            (tmp / "labels" / f"{i:012d}.txt").write_text(
                "".join(f"{r[0]} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows))
        (tmp / "data.yaml").write_text(yaml.safe_dump(
            {"path": str(root), "train": "images", "val": "images", "names": _names()}))

    _atomic_dir(root, build)
    return root / "data.yaml"


def index_set(cache_dir: Path | None = None, n: int = COCO_TRAIN_IMAGES, seed: int = 0) -> Path:
    """n label files + tiny JPEGs in COCO's layout; returns its data.yaml (val: 64 of them)."""
    root = (cache_dir or default_cache_dir()) / f"index{n}-s{seed}"

    def build(tmp: Path) -> None:
        img_dir, lab_dir = tmp / "images" / "train2017", tmp / "labels" / "train2017"
        img_dir.mkdir(parents=True)
        lab_dir.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        jpeg = buf.tobytes()
        n_rows = rng.integers(1, 16, n)
        cls = rng.integers(0, N_CLASSES, int(n_rows.sum()))
        xy = rng.uniform(0.2, 0.8, (int(n_rows.sum()), 2))
        wh = rng.uniform(0.01, 0.3, (int(n_rows.sum()), 2))
        k = 0
        for i in range(n):
            name = f"{i + 1:012d}"
            with open(img_dir / f"{name}.jpg", "wb") as f:
                f.write(jpeg)
            lines = []
            for _ in range(int(n_rows[i])):
                lines.append(f"{cls[k]} {xy[k, 0]:.6f} {xy[k, 1]:.6f} {wh[k, 0]:.6f} {wh[k, 1]:.6f}\n")
                k += 1
            with open(lab_dir / f"{name}.txt", "w") as f:
                f.write("".join(lines))
        (tmp / "val2017.txt").write_text("".join(f"./images/train2017/{i + 1:012d}.jpg\n" for i in range(64)))
        (tmp / "data.yaml").write_text(yaml.safe_dump(
            {"path": str(root), "train": "images/train2017", "val": "val2017.txt", "names": _names()}))

    _atomic_dir(root, build)
    return root / "data.yaml"


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    print(jpeg_set(), f"{time.perf_counter() - t:.1f}s")
    files = sorted((jpeg_set().parent / "images").iterdir())
    print("mean jpeg kB", np.mean([f.stat().st_size for f in files]) / 1e3)
