"""Comet backend of yolo_core's RunLogger: online when it can, an offline archive in the run directory otherwise.

It lives outside yolo_core, in integrations/ (experiments/loggers.py builds it from the `logger` config
group): yolo_core only knows the RunLogger interface and never imports comet_ml.

Mode, decided once in start():

- online  when an API key is configured (COMET_API_KEY, or `comet login`'s ~/.comet.config;
  never a config value of ours) and the Comet server answers a short HTTP probe
  (`probe_timeout_s`, default 2.5 s, of the endpoint comet_ml itself would use, so
  COMET_URL_OVERRIDE is honoured). Without the probe a set key with no network blocks
  comet_ml for ~30 s per run before it gives up.
- offline otherwise (no key, `offline=True`, or the probe/online start failed: one
  warning): comet_ml writes `<run_dir>/comet/<experiment_key>-<suffix>.zip` when the run
  ends; upload it later with `comet upload <run_dir>/comet/*.zip` (COMET_API_KEY set).

The experiment key is chosen here and kept in `<run_dir>/comet/experiment_key`; a
resumed run (requeue after preemption) continues the same experiment, online
(`comet_ml.start(experiment_key=..., mode="get_or_create")`) or offline (one more zip for
the same key; `comet upload` appends it to the experiment). An online experiment that
loses the network later falls back to an offline zip in the same folder (comet_ml's own
fallback).

comet_ml is imported lazily, inside start(): the trainer, the `local` logger and
`import integrations.comet` never import it. Its automatic logging (torch
monkey-patching, stdout, code, git, CLI args) is off, as is its Sentry crash reporting;
the machine's details are logged only with log_env=True. Every Comet error is caught and logged as a warning: tracking never stops
a training run, and it leaves the global `random` state as it found it.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yolo_core.loggers import RunLogger
from yolo_core.train.config import TrainConfig

# The trainer writes the records of the "yolo_core" logger hierarchy to the run's train.log
# (yolo_core.loggers.base.RunLogger); this backend logs under it so its warnings land there
# too. A logger name, not a module: nothing in yolo_core imports this file or comet_ml.
LOG = logging.getLogger("yolo_core.loggers.comet")

COMET_DIR = "comet"
KEY_FILE = "experiment_key"
PR_CURVE_FILE = "pr_curve.csv"  # written by the trainer's final evaluation
DEFAULT_NAME = "{backbone}-{neck_init}-{schedule}-s{seed}"
TAG_AXES = ("backbone", "neck_init", "schedule", "optimizer", "data", "seed")
BOX_CONF = 0.25          # predictions drawn on logged images (YOLOv5's plotting threshold)
MAX_BOXES = 100          # per image


class CometLogger(RunLogger):
    """Mirror a training run to Comet (see the module docstring for online/offline).

    project/workspace: None lets comet_ml's own config decide (COMET_PROJECT_NAME,
      COMET_WORKSPACE). name: a str.format template over the run's axes (backbone,
      neck_init, schedule, optimizer, data, seed, epochs, ...). tags: extra tags besides
      "axis:value" ones. offline: never go online. log_env: let comet_ml record the host,
      CPU/GPU/disk/network details and metrics (off: nothing about the machine is sent).
      log_model: upload checkpoints/best.pt at the end. log_images: how many validation
      images to log with their predicted (and ground-truth) boxes. params: extra parameters
      (e.g. the composed Hydra config), logged flattened with the prefix "conf.".
    There is deliberately no api_key argument: the key comes from the environment only.
    """

    def __init__(self, project: str | None = None, workspace: str | None = None, name: str | None = DEFAULT_NAME,
                 tags: list[str] | tuple[str, ...] = (), offline: bool = False, log_env: bool = False,
                 log_model: bool = False, log_images: int = 0, probe_timeout_s: float = 2.5,
                 params: Mapping[str, Any] | None = None):
        self.project = project
        self.workspace = workspace
        self.name = name
        self.tags = list(tags or ())
        self.offline = bool(offline)
        self.log_env = bool(log_env)
        self.log_model = bool(log_model)
        self.log_images = int(log_images or 0)
        self.probe_timeout_s = float(probe_timeout_s)
        self.params = dict(params or {})
        self.experiment: Any = None
        self.online = False
        self.experiment_key: str | None = None
        self.run_dir: Path | None = None
        self.start_seconds: float | None = None   # time start() took (probe + experiment creation)
        self._val_split: Any = None
        self._config: dict[str, Any] = {}
        self._last_epoch: int | None = None
        self._secret: str | None = None            # the API key, kept only to redact it from messages

    # ------------------------------------------------------------------ RunLogger
    def start(self, run_dir: str, config: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
        t0 = time.perf_counter()
        try:
            with own_random():
                self._start(Path(run_dir), config, facts)
        except Exception as e:  # tracking must never stop training
            LOG.warning("Comet logging disabled for this run: %s: %s", type(e).__name__, self._redact(e))
            self._end_quietly()
        finally:
            self.start_seconds = time.perf_counter() - t0

    def log_epoch(self, epoch: int, row: Mapping[str, Any]) -> None:
        if self.experiment is None:
            return
        self._last_epoch = epoch
        metrics = {k: float(v) for k, v in row.items() if k != "epoch" and _finite(v)}
        with own_random():
            self._safe("log_epoch", self.experiment.log_metrics, metrics, step=epoch, epoch=epoch)

    def log_final(self, summary: Mapping[str, Any], run_dir: str) -> None:
        if self.experiment is None:
            return
        with own_random():
            self._safe("the final evaluation", self._log_final, summary, Path(run_dir))

    def _log_final(self, summary: Mapping[str, Any], run: Path) -> None:
        exp = self.experiment
        step = self._last_epoch if self._last_epoch is not None else _last_epoch(summary)
        final = {f"final/{k}": float(v) for k, v in (summary.get("metrics") or {}).items() if _finite(v)}
        for k in ("train_images_per_s", "best_epoch", "epochs_completed", "wall_time_s"):
            if _finite(summary.get(k)):
                final[f"final/{k}"] = float(summary[k])
        self._safe("final metrics", exp.log_metrics, final, step=step, epoch=step)
        others = {f"final_eval/{k}": v for k, v in (summary.get("final_eval") or {}).items()}
        others.update({"device": summary.get("device"), "git_rev": summary.get("git_rev"),
                       "run_name": summary.get("run_name")})
        others.update({f"versions/{k}": v for k, v in (summary.get("versions") or {}).items()})
        self._safe("others", exp.log_others, {k: v for k, v in others.items() if v is not None})
        if self.log_model:
            best = run / "checkpoints" / "best.pt"
            if best.is_file():
                self._safe("best.pt", exp.log_model, "best", str(best), file_name="best.pt")
        self._safe("PR curves", self._log_pr_curves, run, step)
        if self.log_images > 0:
            self._safe("validation images", self._log_val_images, run, step)

    def finish(self, status: str) -> None:
        if self.experiment is None:
            return
        online = self.online
        with own_random():
            self._safe("status", self.experiment.log_other, "status", status)
            self._end_quietly()
        if not online and self.run_dir is not None:
            zips = sorted((self.run_dir / COMET_DIR).glob(f"{self.experiment_key}*.zip"), key=os.path.getmtime)
            if zips:
                LOG.info("Comet offline archive %s; upload it with: comet upload %s", zips[-1], zips[-1])

    # ------------------------------------------------------------------ start
    def _start(self, run_dir: Path, config: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
        os.environ.setdefault("COMET_DISABLE_AUTO_LOGGING", "1")  # no monkey-patching of torch: we log explicitly
        # comet_ml's own crash reporting (Sentry, in half the processes): no third-party traffic, no 2 s
        # flush at exit without a network. Set COMET_ERROR_TRACKING_ENABLE=true to allow it.
        os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
        import comet_ml  # lazy: only this backend needs it

        self.run_dir = run_dir
        self._config = dict(config)
        self._val_split = facts.get("val_split")
        comet_dir = run_dir / COMET_DIR
        comet_dir.mkdir(parents=True, exist_ok=True)
        resumed = bool(facts.get("resumed"))
        self.experiment_key = self._experiment_key(comet_ml, comet_dir, resumed or bool(config.get("resume", True)))

        online, why = self._choose_mode(comet_ml)
        axes = facts.get("axes") or TrainConfig(**config).run_axes()
        exp_config = comet_ml.ExperimentConfig(
            name=format_name(self.name, axes), tags=self.tags + axis_tags(axes),
            offline_directory=str(comet_dir), display_summary_level=0,
            # nothing automatic: what is logged is what this class logs
            log_code=False, log_graph=False, parse_args=False, log_git_metadata=False, log_git_patch=False,
            auto_output_logging=False, auto_param_logging=False, auto_metric_logging=False, auto_log_co2=False,
            # the machine: only when allowed
            log_env_details=self.log_env, log_env_host=self.log_env, log_env_gpu=self.log_env,
            log_env_cpu=self.log_env, log_env_network=self.log_env, log_env_disk=self.log_env)
        start_kw = dict(project_name=self.project, workspace=self.workspace, experiment_key=self.experiment_key,
                        mode="get_or_create", experiment_config=exp_config)
        exp = None
        if online:
            try:
                exp = comet_ml.start(online=True, **start_kw)
                if not getattr(exp, "alive", True):  # e.g. the server refused the key: comet_ml logs, not raises
                    exp.end()
                    raise RuntimeError("the experiment is not alive (see the COMET ERROR above)")
            except Exception as e:
                exp = None
                LOG.warning("Comet: could not start the online experiment (%s: %s); logging offline to %s",
                            type(e).__name__, self._redact(e), comet_dir)
                online = False
        elif why:
            LOG.warning("Comet: %s; logging offline to %s (upload later: comet upload %s/*.zip)",
                        why, comet_dir, comet_dir)
        else:
            LOG.info("Comet: logging offline to %s (upload later: comet upload %s/*.zip)", comet_dir, comet_dir)
        if exp is None:
            exp = comet_ml.start(online=False, **start_kw)
        self.experiment, self.online = exp, online

        exp.log_parameters(flatten(config))
        if self.params:
            exp.log_parameters(flatten(self.params, prefix="conf."))
        others = {f"model/{k}": v for k, v in facts.items()
                  if k not in ("resumed", "val_split") and isinstance(v, (int, float, str, bool))}
        others.update({"run_dir": str(run_dir), "mode": "online" if online else "offline"})
        if resumed:
            others["resumed"] = True
        exp.log_others(others)
        if online:
            LOG.info("Comet experiment %s: %s", self.experiment_key, getattr(exp, "url", ""))

    def _experiment_key(self, comet_ml, comet_dir: Path, continue_run: bool) -> str:
        """The key of this run's experiment: the saved one on resume, else a new one (saved)."""
        path = comet_dir / KEY_FILE
        if continue_run and path.is_file():
            key = path.read_text().strip()
            if key:
                return key
        key = comet_ml.get_experiment_key(None)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(key + "\n")
        os.replace(tmp, path)
        return key

    def _choose_mode(self, comet_ml) -> tuple[bool, str | None]:
        """(online?, why offline when that deserves a warning)."""
        config = comet_ml.get_config()
        self._secret = comet_ml.get_api_key(None, config)
        if self.offline or not self._secret:
            return False, None
        url = comet_ml.get_backend_address(config)
        ok, detail = probe_comet(url, self.probe_timeout_s)
        if ok:
            return True, None
        return False, f"COMET_API_KEY is set but the Comet server at {url} did not answer ({detail})"

    # ------------------------------------------------------------------ curves, images
    def _log_pr_curves(self, run: Path, step: int | None) -> None:
        """pr_curve.csv of the final evaluation as Comet curves: pr_curve/all and one per class."""
        path = run / PR_CURVE_FILE
        if not path.is_file():
            return
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        header, values = rows[0], [[float(v) for v in row] for row in rows[1:]]
        recall = [row[0] for row in values]
        for j, name in enumerate(header[1:], start=1):
            self.experiment.log_curve(f"pr_curve/{name}", recall, [row[j] for row in values], step=step)

    def _log_val_images(self, run: Path, step: int | None) -> None:
        pred_path = run / "predictions.json"
        if not pred_path.is_file():
            return
        split = self._val_split if self._val_split is not None else load_val_split(self._config)
        names = dict(zip(split.category_ids, split.names))
        preds: dict[int, list[dict]] = {}
        for p in json.loads(pred_path.read_text()):
            preds.setdefault(int(p["image_id"]), []).append(p)
        from comet_ml import Box, Layer  # lazy, as above

        for rec in sorted(split.records, key=lambda r: int(r.image_id))[:self.log_images]:
            dets = sorted(preds.get(int(rec.image_id), []), key=lambda p: -p["score"])
            dets = [p for p in dets if p["score"] >= BOX_CONF][:MAX_BOXES]
            layers = []  # comet_ml rejects an empty layer
            if dets:
                layers.append(Layer(boxes=[Box([float(v) for v in p["bbox"]], score=float(p["score"]),
                                               label=str(names.get(p["category_id"], p["category_id"])))
                                           for p in dets], name="predictions"))
            gt = _gt_boxes(rec, split)
            if gt:
                layers.append(Layer(boxes=[Box(b, label=str(names.get(c, c))) for c, b in gt], name="ground truth"))
            self.experiment.log_image(rec.path, name=f"val/{Path(rec.path).name}", step=step,
                                      annotations=layers or None, metadata={"image_id": int(rec.image_id),
                                                                            "predictions": len(dets)})

    # ------------------------------------------------------------------ helpers
    def _safe(self, what: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:
            LOG.warning("Comet: logging %s failed: %s: %s", what, type(e).__name__, self._redact(e))

    def _redact(self, obj: Any) -> str:
        text = str(obj)
        return text.replace(self._secret, "***") if self._secret else text

    def _end_quietly(self) -> None:
        exp, self.experiment, self.online = self.experiment, None, False
        if exp is not None:
            try:
                exp.end()
            except Exception as e:
                LOG.warning("Comet: ending the experiment failed: %s: %s", type(e).__name__, self._redact(e))


# ---------------------------------------------------------------------- module helpers
@contextmanager
def own_random() -> Iterator[None]:
    """Run comet_ml calls on fresh entropy and leave the global `random` state as it was.

    comet_ml draws names from the global `random` (e.g. the suffix of an offline archive
    of a resumed experiment): after the trainer's seeding every attempt of a run would
    draw the same suffix, and the second archive would overwrite the first. Restoring
    the state also keeps the trainer's seeded stream untouched by tracking.
    """
    state = random.getstate()
    random.seed()
    try:
        yield
    finally:
        random.setstate(state)


def probe_comet(url: str, timeout_s: float = 2.5) -> tuple[bool, str]:
    """Does the Comet server at `url` answer within timeout_s (DNS, connect, TLS, response)?

    Any HTTP answer counts (a 401/404 still means the server is there). The request runs
    in a daemon thread joined with the deadline, so a hanging DNS lookup cannot hold us
    longer than timeout_s either.
    """
    probe_url = url.rstrip("/") + "/isAlive/ping"
    result: dict[str, tuple[bool, str]] = {}

    def run() -> None:
        try:
            req = urllib.request.Request(probe_url, headers={"User-Agent": "yolo_core-comet-probe"})
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                result["r"] = (True, f"HTTP {r.status}")
        except urllib.error.HTTPError as e:
            result["r"] = (True, f"HTTP {e.code}")
        except Exception as e:
            reason = getattr(e, "reason", e)
            result["r"] = (False, f"{type(reason).__name__}: {reason}")

    t = threading.Thread(target=run, name="comet-probe", daemon=True)
    t.start()
    t.join(timeout_s)
    return result.get("r", (False, f"no answer within {timeout_s:g} s"))


def format_name(template: str | None, axes: Mapping[str, Any]) -> str | None:
    """'{backbone}-{neck_init}-{schedule}-s{seed}' -> 'cspdarknet_s-random-linear-s0' (unknown keys kept)."""
    if not template:
        return None

    class _Keep(dict):
        def __missing__(self, key):
            return "{" + key + "}"

    return template.format_map(_Keep(axes))


def axis_tags(axes: Mapping[str, Any]) -> list[str]:
    return [f"{k}:{axes[k]}" for k in TAG_AXES if axes.get(k) is not None]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {'a.b.c': value}; lists of scalars stay lists, other values become str."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v
        elif isinstance(v, (list, tuple)) and all(x is None or isinstance(x, (bool, int, float, str)) for x in v):
            out[key] = list(v)
        else:
            out[key] = str(v)
    return out


def load_val_split(config: Mapping[str, Any]):
    """The val split of the run's dataset, reloaded from its TrainConfig dict (for logged images)."""
    from yolo_core.data.sources import load_dataset
    from yolo_core.data.synthetic import ensure_synthetic_dataset

    data = config.get("data", "synthetic")
    spec = ensure_synthetic_dataset(**(config.get("synthetic") or {})) if data == "synthetic" else data
    return load_dataset(spec, workers=2).val


def _gt_boxes(rec, split) -> list[tuple[int, list[float]]]:
    """Ground-truth [x, y, w, h] boxes in original pixels, with their category ids."""
    import numpy as np

    labels = np.asarray(rec.labels, dtype=np.float64).reshape(-1, 5)
    if not len(labels):
        return []
    w, h = rec.width, rec.height
    if not (w and h):
        from PIL import Image

        with Image.open(rec.path) as im:
            w, h = im.size
    return [(int(split.category_ids[int(c)]), [(xc - bw / 2) * w, (yc - bh / 2) * h, bw * w, bh * h])
            for c, xc, yc, bw, bh in labels.tolist()]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _last_epoch(summary: Mapping[str, Any]) -> int | None:
    n = summary.get("epochs_completed")
    return int(n) - 1 if isinstance(n, int) and n > 0 else None
