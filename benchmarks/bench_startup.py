"""Start-up and indexing: process start -> first training step, dataset indexing, peak RSS.

- start-up: a fresh Python process runs `yolo_core.train.train` (yolov5s, 320 px, batch 16,
  2 workers) on the generated JPEG set whose index cache and .npy disk cache already
  exist; the times are taken from just before the process is spawned to the start of the
  first training forward (a global module pre-hook: everything before training can
  begin) and to the end of the first optimizer step (a global optimizer step hook; the
  process then exits). The first step is itself several times slower than later ones
  (oneDNN builds its kernels on first use).
- peak memory: the same with the RAM cache, for 8 optimizer steps: the trainer process's
  own peak RSS, and the process tree (trainer + loader workers) sampled every 50 ms for
  its summed PSS (shared pages divided among the processes that map them; summed RSS,
  which counts the pages forked workers share once per process, is in the note).
- index: `load_dataset` of 118,287 YOLO label files (+ tiny images), in a fresh process,
  cold (no index cache) and cached; time of the call and the process's peak RSS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import anchors, datagen
from .common import Row, median, section_args, write_rows

REPO = Path(__file__).resolve().parents[1]

_TRAIN_CHILD = r"""
import json, os, resource, sys, time
t0 = float(os.environ["BENCH_T0"]); steps = int(os.environ["BENCH_STEPS"]); out = os.environ["BENCH_OUT"]
import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_post_hook
from yolo_core.train.config import TrainConfig
from yolo_core.train.trainer import train
t_import = time.time() - t0
seen, started = [], []
def pre(mod, args):
    if not started and mod.training and torch.is_grad_enabled() and type(mod).__name__ == "YOLODetector":
        started.append(time.time() - t0)
register_module_forward_pre_hook(pre)
def hook(opt, args, kwargs):
    seen.append(time.time() - t0)
    if len(seen) >= steps:
        with open(out, "w") as f:
            json.dump({"import_s": t_import, "first_step_s": seen[0], "first_forward_s": started[0], "step_times": seen,
                       "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, f)
        os._exit(0)
register_optimizer_step_post_hook(hook)
train(TrainConfig(**json.loads(os.environ["BENCH_CFG"])))
"""

_INDEX_CHILD = r"""
import json, os, resource, time
from yolo_core.data import load_dataset
t = time.perf_counter()
ds = load_dataset(os.environ["BENCH_YAML"])
s = time.perf_counter() - t
print(json.dumps({"s": s, "n": len(ds.train.records), "labels": int(sum(len(r.labels) for r in ds.train.records)),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
    env.update(extra)
    return env


def _tree_memory_mb(pid: int) -> tuple[float, float]:
    """(summed RSS, summed PSS) of a process and its children, MB. PSS divides each shared
    page among the processes mapping it, so forked loader workers are not counted twice."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0
    rss = pss = 0
    for q in procs:
        try:
            full = q.memory_full_info()
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
        except psutil.Error:
            pass
    return rss / 2**20, pss / 2**20


def run_trainer(cfg: dict, steps: int, timeout: float = 600) -> dict:
    """Spawn the trainer; return the child's timings and RSS plus the sampled tree peak."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cfg = {**cfg, "out_dir": str(Path(tmp) / "run")}
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", _TRAIN_CHILD], cwd=REPO,
                                env=_env(BENCH_T0=repr(t0), BENCH_STEPS=str(steps), BENCH_OUT=str(out),
                                         BENCH_CFG=json.dumps(cfg)))
        peak = [0.0, 0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss, pss = _tree_memory_mb(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
                time.sleep(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            done.set()
            th.join()
        if not out.is_file():
            raise RuntimeError(f"trainer child exited with {rc} before {steps} optimizer steps")
        res = json.loads(out.read_text())
        res["tree_peak_rss_mb"], res["tree_peak_pss_mb"] = peak
        return res


def run_index(data_yaml: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _INDEX_CHILD], cwd=REPO, env=_env(BENCH_YAML=str(data_yaml)),
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"index child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def clear_index_cache(data_yaml: Path) -> int:
    """Remove the index caches of a dataset (the cold case); returns how many were removed."""
    from yolo_core.data.index_cache import remove_index_caches

    return remove_index_caches(data_yaml)


def main() -> None:
    args = section_args()
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    rows = []

    jpeg_yaml = datagen.jpeg_set(cache_dir)
    base = dict(data=str(jpeg_yaml), model="yolov5s", imgsz=320 if not args.quick else 128, batch_size=16,
                workers=2, epochs=1, device="cpu", seed=0)
    run_index(jpeg_yaml)  # writes the index cache: the trainer below starts on a cached dataset
    run_trainer({**base, "cache": "disk"}, steps=1)  # writes the .npy files
    vals = [run_trainer({**base, "cache": "disk"}, steps=1) for _ in range(1 if args.quick else 3)]
    first = median([v["first_step_s"] for v in vals])
    fwd = median([v["first_forward_s"] for v in vals])
    rows.append(Row("startup", "process start -> first train step begins (disk cache, index cached)",
                    round(fwd, 2), "s", anchors.STARTUP_S, False, 1.0,
                    note=f"imports {median([v['import_s'] for v in vals]):.1f} s; anchor = target",
                    extra={"runs": [round(v["first_forward_s"], 2) for v in vals]}))
    rows.append(Row("startup", "process start -> first train step done (disk cache, index cached)",
                    round(first, 2), "s", anchors.STARTUP_S, False, 1.0,
                    note=f"the first b16@{base['imgsz']} step itself: {first - fwd:.1f} s; anchor = target",
                    extra={"runs": [round(v["first_step_s"], 2) for v in vals]}))
    ram = run_trainer({**base, "cache": "ram"}, steps=8 if not args.quick else 2)
    rows.append(Row("startup", "process start -> first train step (RAM cache, index cached)",
                    round(ram["first_step_s"], 2), "s", None, False, None))
    rows.append(Row("memory", f"peak RSS, training {base['imgsz']} px b16 RAM cache, trainer process",
                    round(ram["rss_mb"]), "MB", None if args.quick else anchors.PEAK_RSS_MB, False, None,
                    note="8 optimizer steps (no validation)"))
    rows.append(Row("memory", "peak memory, same run, trainer + 2 loader workers (summed PSS)",
                    round(ram["tree_peak_pss_mb"]), "MB", None if args.quick else anchors.PEAK_RSS_MB, False, None,
                    note=f"summed RSS {ram['tree_peak_rss_mb']:.0f} MB counts pages shared by the forked "
                         f"workers once per process; sampled every 50 ms"))

    n = 2000 if args.quick else datagen.COCO_TRAIN_IMAGES
    index_yaml = datagen.index_set(cache_dir, n=n)
    clear_index_cache(index_yaml)
    cold = run_index(index_yaml)
    cached = [run_index(index_yaml) for _ in range(1 if args.quick else 3)]
    rows.append(Row("index", f"index {cold['n']} YOLO label files, cold", round(cold["s"], 2), "s",
                    anchors.INDEX_COLD_S, False, 1.0, note=f"{cold['labels']} labels; peak RSS {cold['rss_mb']:.0f} MB; "
                                                          "anchor = target", extra=cold))
    c = median([x["s"] for x in cached])
    rows.append(Row("index", f"index {cold['n']} YOLO label files, cached", round(c, 2), "s",
                    anchors.INDEX_CACHED_S, False, 1.0,
                    note=f"peak RSS {median([x['rss_mb'] for x in cached]):.0f} MB; anchor = target",
                    extra={"runs": cached}))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
