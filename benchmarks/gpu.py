"""GPU benchmark: the train step of both backbones at batch 64 / 640, in one go (< 8 minutes).

    python -m benchmarks.gpu --out DIR [--budget 420] [--cpu-smoke]

Configurations, cheapest and most informative first, each in its own try/except and each
started only if the time budget still allows its estimate (a failure or a skip costs
that configuration only; its row says why):
  1. synthetic tensors already on the GPU: yolov5s and convnext_tiny, AMP fp16 and bf16,
     channels_last; yolov5s fp16 also in NCHW (the channels_last effect);
  2. the real loader: the generated 512-JPEG set (RAM cache, mosaic + full augmentation,
     8+ workers, pinned memory, persistent workers) alone, and feeding each model (fp16);
  3. torch.compile of the training forward, fp16 channels_last, both models (compiling
     takes a minute or more each, so they come last).
Each row: images/s (median over timed steps after warm-up), s/step, peak CUDA memory
allocated (torch.cuda.max_memory_allocated) and reserved. The step is the trainer's
(benchmarks/bench_train.make_step: /255 on the device, autocast, YOLOv5Loss, GradScaler,
unscale, clip 10, SGD step, zero_grad, EMA update).

--cpu-smoke runs the same code paths on the CPU at tiny sizes (batch 2, 64 px, bf16
autocast, 2 loader workers; compile skipped unless --smoke-compile): a dry run for a
machine without a GPU.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import datagen
from .bench_train import make_step


@dataclass
class Result:
    name: str
    images_per_s: float | None = None
    step_s: float | None = None
    peak_alloc_gb: float | None = None
    peak_reserved_gb: float | None = None
    seconds: float = 0.0
    status: str = "ok"
    extra: dict = field(default_factory=dict)


class Budget:
    """Wall-clock budget of the whole run: a configuration starts only if its estimate fits."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _memory(device: str) -> tuple[float | None, float | None]:
    if not device.startswith("cuda"):
        return None, None
    return torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30


def run_config(res: Result, budget: Budget, estimate: float, fn) -> Result:
    """Run fn(res) unless the budget is short; record failures instead of raising."""
    if budget.left() < estimate:
        res.status = f"skipped: {budget.left():.0f} s left, needs ~{estimate:.0f} s"
        print(f"  {res.name}: {res.status}", flush=True)
        return res
    t = time.perf_counter()
    try:
        fn(res)
    except Exception as e:  # one configuration's failure must not lose the others
        res.status = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        traceback.print_exc()
    finally:
        res.seconds = round(time.perf_counter() - t, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print(f"  {res.name}: {res.status}, {res.images_per_s} img/s, peak {res.peak_alloc_gb} GB, "
          f"{res.seconds} s", flush=True)
    return res


def synthetic(model: str, bs: int, imgsz: int, device: str, dtype, channels_last: bool, compile_model: bool,
              warmup: int, steps: int):
    def fn(res: Result) -> None:
        _reset_memory(device)
        step, _ = make_step(model, bs, imgsz, channels_last, device=device, amp_dtype=dtype,
                            compile_model=compile_model)
        t = time.perf_counter()
        for _ in range(warmup):
            step()
        _sync(device)
        res.extra["warmup_s"] = round(time.perf_counter() - t, 1)
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            step()
            _sync(device)
            times.append(time.perf_counter() - t)
        times.sort()
        s = times[len(times) // 2]
        res.step_s, res.images_per_s = round(s, 4), round(bs / s, 1)
        res.peak_alloc_gb, res.peak_reserved_gb = (None if v is None else round(v, 2) for v in _memory(device))
    return fn


def build_loader(imgsz: int, bs: int, workers: int, cache_dir: Path | None, device: str):
    from yolo_core.data import YOLODataset, build_dataloader, load_dataset

    ds = load_dataset(datagen.jpeg_set(cache_dir))
    train = YOLODataset(ds.train, imgsz, augment=True, batch_size=bs, cache="ram", seed=0)
    return build_dataloader(train, bs, shuffle=True, workers=workers, seed=0, drop_last=True,
                            pin_memory=device.startswith("cuda"))


def loader_only(loader, batches: int):
    def fn(res: Result) -> None:
        it = iter(loader)
        next(it)  # workers started, first batches prefetched
        n, t = 0, time.perf_counter()
        for _ in range(batches):
            try:
                imgs, *_ = next(it)
            except StopIteration:
                it = iter(loader)
                imgs, *_ = next(it)
            n += imgs.shape[0]
        s = time.perf_counter() - t
        res.images_per_s = round(n / s, 1)
    return fn


def fed(model: str, loader, bs: int, imgsz: int, device: str, dtype, steps: int, warmup: int):
    def fn(res: Result) -> None:
        _reset_memory(device)
        step, _ = make_step(model, bs, imgsz, True, device=device, amp_dtype=dtype)
        it = iter(loader)

        def batch():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(loader)
                return next(it)

        for _ in range(warmup):
            imgs, targets, *_ = batch()
            step(imgs, targets)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            imgs, targets, *_ = batch()
            step(imgs, targets)
        _sync(device)
        s = (time.perf_counter() - t) / steps
        res.step_s, res.images_per_s = round(s, 4), round(bs / s, 1)
        res.peak_alloc_gb, res.peak_reserved_gb = (None if v is None else round(v, 2) for v in _memory(device))
    return fn


def markdown(results: list[Result], device_name: str, header: str) -> str:
    lines = [header, "", f"device: **{device_name}**", "",
             "| configuration | images/s | s/step | peak alloc GB | peak reserved GB | time s | status |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.images_per_s if r.images_per_s is not None else '-'} | "
                     f"{r.step_s if r.step_s is not None else '-'} | "
                     f"{r.peak_alloc_gb if r.peak_alloc_gb is not None else '-'} | "
                     f"{r.peak_reserved_gb if r.peak_reserved_gb is not None else '-'} | {r.seconds} | {r.status} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "benchmarks/gpu_out"))
    ap.add_argument("--budget", type=float, default=420, help="seconds for all configurations together")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (dry run)")
    ap.add_argument("--smoke-compile", action="store_true", help="with --cpu-smoke: also try torch.compile")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default min(12, cpus - 2))")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget)
    smoke = args.cpu_smoke or not torch.cuda.is_available()
    if smoke and not args.cpu_smoke:
        print("no CUDA device: running the CPU smoke configuration", flush=True)
    device = "cpu" if smoke else "cuda"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    bs, imgsz = (2, 64) if smoke else (64, 640)
    warmup, steps = (1, 2) if smoke else (3, 10)
    workers = args.workers or (2 if smoke else max(8, min(12, (os.cpu_count() or 8) - 2)))
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    fp16, bf16 = torch.float16, torch.bfloat16
    if smoke:
        fp16 = bf16  # CPU autocast: bf16 is the supported fast path
    print(f"device {device_name}, torch {torch.__version__}, batch {bs} @ {imgsz}, budget {args.budget:.0f} s",
          flush=True)
    results: list[Result] = []
    est = 10 if smoke else 25  # seconds per synthetic configuration (model build + warm-up + steps)

    for model in ("yolov5s", "convnext_tiny"):
        for dname, dt in (("fp16", fp16), ("bf16", bf16)):
            if smoke and dname == "fp16":
                continue
            r = Result(f"{model} synthetic {dname} channels_last b{bs}@{imgsz}")
            results.append(run_config(r, budget, est, synthetic(model, bs, imgsz, device, dt, True, False,
                                                                   warmup, steps)))
    r = Result(f"yolov5s synthetic {'fp16' if not smoke else 'bf16'} NCHW b{bs}@{imgsz}")
    results.append(run_config(r, budget, est, synthetic("yolov5s", bs, imgsz, device, fp16, False, False,
                                                         warmup, steps)))

    loader = None
    r = Result(f"loader alone: 512 JPEGs, RAM cache, mosaic+aug, {workers} workers, b{bs}@{imgsz}")

    def make_and_measure(res: Result) -> None:
        nonlocal loader
        t = time.perf_counter()
        loader = build_loader(imgsz, bs, workers, cache_dir, device)
        res.extra["setup_s"] = round(time.perf_counter() - t, 1)
        loader_only(loader, 4 if smoke else 24)(res)

    results.append(run_config(r, budget, 30 if smoke else 60, make_and_measure))
    if loader is not None:
        for model in ("yolov5s", "convnext_tiny"):
            r = Result(f"{model} fed by the loader ({workers} workers) {'fp16' if not smoke else 'bf16'} "
                       f"channels_last b{bs}@{imgsz}")
            results.append(run_config(r, budget, est + 10, fed(model, loader, bs, imgsz, device, fp16,
                                                                steps, warmup)))
        del loader

    if not smoke or args.smoke_compile:
        for model, est_c in (("yolov5s", 120), ("convnext_tiny", 150)):
            r = Result(f"{model} synthetic {'fp16' if not smoke else 'bf16'} channels_last torch.compile "
                       f"b{bs}@{imgsz}")
            results.append(run_config(r, budget, est_c, synthetic(model, bs, imgsz, device, fp16, True, True,
                                                                   warmup + 2, steps)))
    else:
        results.append(Result("torch.compile configurations", status="skipped in --cpu-smoke "
                                                                     "(add --smoke-compile)"))

    header = (f"### GPU benchmark {time.strftime('%Y-%m-%d %H:%M')}{' (CPU smoke)' if smoke else ''}\n\n"
              f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    md = markdown(results, device_name, header)
    print("\n" + md, flush=True)
    (out / "gpu_results.md").write_text(md + "\n")
    (out / "gpu_results.json").write_text(json.dumps({"device": device_name, "torch": torch.__version__,
                                                       "results": [asdict(r) for r in results]}, indent=1))
    print(f"\nwritten to {out}/gpu_results.md and .json", flush=True)
    return 0 if all(r.status == "ok" or r.status.startswith("skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
