"""The training run: YOLOv5's recipe in plain PyTorch, with exact resume.

The Trainer sets a run up (data, model, optimizer, resume) and owns its directory; one
epoch is engine.train_one_epoch, validation eval.evaluate. After each epoch the
EMA model is validated, results.csv/summary.json are rewritten and last.pt (plus best.pt
on a new best fitness) is saved atomically. A restarted run continues from last.pt.
Stop signals are handled in preemption.py, several processes (DDP) in distributed.py.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DetectionDataset
from ..data.dataset import YOLODataset, record_hw
from ..data.loader import build_dataloader
from ..data.sources import load_dataset
from ..data.synthetic import ensure_synthetic_dataset
from ..eval.coco import evaluated_ground_truth, records_to_coco_gt
from ..eval.evaluator import EvalResult, evaluate
from ..eval.metrics import PR_RECALL, fitness
from ..eval.tables import format_coco, format_table, per_class_rows
from ..plots import EvalPlots, draw_safely, plot_labels, plot_results, write_eval_plots
from ..loggers import RunLogger
from ..loss import YOLOv5Loss, scale_loss_gains
from ..models import build_model, model_facts
from ..models.checkpoint import CheckpointError, load_checkpoint_weights, load_training_checkpoint
from ..models.transfer import transfer_weights
from ..optim import build_param_groups
from .atomic import atomic_torch_save, atomic_write_json, atomic_write_json_gz, remove_orphaned_temps
from .autoanchor import check_anchors
from . import distributed as ddp
from .config import TrainConfig
from .ema import ModelEMA
from .engine import EpochStats, TrainStep, train_one_epoch
from .identity import IdentityMismatch, differences, identity_digest, run_identity, upgraded
from .nonfinite import NonFiniteSteps
from .optimizer import build_optimizer
from .preemption import Preempted, StopRequest
from .run_files import (SUMMARY_METRICS, clean_metric, git_revision, package_versions, results_header,
                        read_summary, write_pr_curve_csv, write_results_csv, write_summary)
from .schedule import lr_lambda, warmup_iterations
from .state import TrainState

LOG = logging.getLogger("yolo_core.train")
RESTART_HINT = ("To train this config, give it another out_dir (hydra.run.dir / hydra.sweep.dir), or set "
                "resume=false to start this directory over (its files are overwritten).")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} requested but CUDA is not available on this machine")
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Official init_seeds: python, numpy, torch (all devices); deterministic cuDNN when asked."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors and primitives, so checkpoints load with weights_only=True."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Train a detector as described by a TrainConfig; `fit()` returns the summary dict."""

    def __init__(self, config: TrainConfig, logger: RunLogger | None = None):
        self.cfg = config.validate()
        self.dist = ddp.from_environment()  # torchrun's RANK/WORLD_SIZE; one process without them
        # only rank 0 logs, validates and writes (see distributed.py)
        self.logger = (logger or RunLogger()) if self.dist.is_main else RunLogger()
        self.run_dir = Path(self.cfg.out_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = ddp.device_for(self.dist, resolve_device(self.cfg.device))
        if self.dist.enabled:
            if self.cfg.batch_size % self.dist.world_size:
                raise ValueError(f"batch_size={self.cfg.batch_size} (the total over all processes) must be a "
                                 f"multiple of WORLD_SIZE={self.dist.world_size}")
            if self.cfg.freeze_backbone_epochs:
                raise ValueError("freeze_backbone_epochs is not supported with several processes (DDP)")
        self.amp = self.cfg.amp if self.cfg.amp is not None else self.device.type == "cuda"
        if self.amp and self.device.type != "cuda":
            raise ValueError("amp=true needs a CUDA device; YOLOv5 trains in fp32 on the CPU")
        self.amp_dtype = getattr(torch, self.cfg.amp_dtype)
        self.state = TrainState(NonFiniteSteps(config.max_nonfinite_steps))  # what last.pt holds (state.py)
        self.summary: dict[str, Any] = {}
        self.data: DetectionDataset | None = None
        self.identity: dict[str, Any] | None = None
        self.stop = StopRequest()  # SIGINT/SIGTERM/SIGUSR2 -> `preempted` at the next safe point

    # ------------------------------------------------------------------ setup
    def _setup_logging(self, held: logging.handlers.MemoryHandler) -> logging.Handler:
        """train.log, starting with the records `held` kept while the run was identified."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.run_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        held.setTarget(handler)
        held.flush()
        logging.getLogger("yolo_core").addHandler(handler)
        return handler

    @staticmethod
    def _hold_logging() -> logging.handlers.MemoryHandler:
        """Keep yolo_core's records in memory until it is known whether this run writes its
        directory: a skipped or refused re-run must leave train.log as it was."""
        root = logging.getLogger("yolo_core")
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        held = logging.handlers.MemoryHandler(capacity=1 << 20, flushLevel=logging.CRITICAL + 1)
        root.addHandler(held)
        return held

    def _load_data(self) -> DetectionDataset:
        cfg = self.cfg
        spec = ensure_synthetic_dataset(**cfg.synthetic) if cfg.data == "synthetic" else cfg.data
        data = load_dataset(spec, max_image_pixels=cfg.max_image_pixels)
        for split in (data.train, data.val):
            if split.skipped:
                LOG.warning("%s split: skipped %s", split.name, split.skipped)
        return data

    def _build_model(self, nc: int) -> torch.nn.Module:
        """The model, with init_weights transferred and checked (init_min_transfer): a run
        labelled with a checkpoint must have started from it. What moved goes to
        self.transfer_report and summary.json's weights_transfer, refused or not."""
        cfg = self.cfg
        model = build_model(cfg.model, nc=nc, **cfg.model_kwargs)
        self.transfer_report = report = None
        if cfg.init_weights:
            report = transfer_weights(model, load_checkpoint_weights(cfg.init_weights), cfg.init_scope)
            self.transfer_report = report.to_dict(cfg.init_weights, cfg.init_min_transfer)
        if isinstance(self.summary, dict):
            self.summary["weights_transfer"] = {
                "init_weights": self.transfer_report,
                "backbone_pretrained": getattr(getattr(model, "backbone", None), "pretrained_report", None)}
        if report is not None:
            report.check(cfg.init_min_transfer, cfg.init_weights)
        return model

    def _build_loaders(self, data: DetectionDataset):
        """Train loader of this process's share (batch_size // WORLD_SIZE, every WORLD_SIZE-th
        image of the epoch's permutation); the val loader on rank 0 only (None elsewhere)."""
        cfg, world = self.cfg, self.dist.world_size
        batch = cfg.batch_size // world
        workers = min((os.cpu_count() or 1) // world or 1, batch, cfg.workers)
        train_set = YOLODataset(data.train, cfg.imgsz, augment=True, hyp=cfg.hyp, batch_size=batch,
                                cache=cfg.cache, seed=cfg.seed)
        train_loader = build_dataloader(train_set, batch, shuffle=True, workers=workers, seed=cfg.seed,
                                        rank=self.dist.rank, world_size=world)
        if not self.dist.is_main:
            self.val_split = self.val_gt = None
            return train_set, None, train_loader, None
        val_bs = cfg.val_batch(world)
        val_set = YOLODataset(data.val, cfg.imgsz, augment=False, rect=True, pad=0.5, batch_size=val_bs,
                              cache=cfg.cache, seed=cfg.seed)
        # rect mode reorders the val records; evaluation indexes the dataset's own order
        self.val_split = replace(data.val, records=val_set.records)
        self.val_gt = data.val.coco_json or None  # None: built from the records when first needed
        val_loader = build_dataloader(val_set, val_bs, shuffle=False, workers=workers, seed=cfg.seed)
        return train_set, val_set, train_loader, val_loader

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        return {
            **self.state.to_checkpoint(epoch, self.state.wall_before + (time.time() - self.t_start)),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "identity": self.identity,
            "rng": rng_state(),
            "model_name": self.cfg.model,
            "model_kwargs": self.cfg.model_kwargs,
            "nc": self.data.nc,
            "names": self.data.names,
        }

    def _resume(self) -> None:
        last = self.ckpt_dir / "last.pt"
        if not (self.cfg.resume and last.is_file()):
            return
        state = load_training_checkpoint(last, self.device, self._damaged_last_hint(),
                                         required=("model", "optimizer", "epoch", "rng"))
        if self.dist.is_main:
            self._check_identity(state.get("identity"), str(last))
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{last} holds the weights of another model than {self.cfg.model} "
                                  f"(nc={self.data.nc}): {str(e).splitlines()[0]}; {self._damaged_last_hint()}") from e
        if self.ema and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = TrainState.from_checkpoint(state, self.cfg.max_nonfinite_steps)
        if self.state.autoanchor is not None:
            self.summary["autoanchor"] = self.state.autoanchor
        self._resume_rng = state["rng"]
        LOG.info("resumed from %s at epoch %d", last, self.state.start_epoch)

    # ------------------------------------------------------------------ loop
    def _validate(self, model: torch.nn.Module, iou_thres: float, coco: bool,
                  plots: EvalPlots | None = None) -> EvalResult:
        """coco=False for the per-epoch validation: results.csv, fitness and best.pt use only
        YOLOv5's metrics, so COCOeval runs once, in the final evaluation."""
        # with DDP the other ranks wait in a collective: rank 0 must not leave on its own
        batches = self.val_loader if self.dist.enabled else self.stop.checked(self.val_loader)
        return evaluate(model, batches, self.val_split, gt=self.val_gt, conf_thres=self.cfg.conf_thres,
                        iou_thres=iou_thres, max_det=self.cfg.max_det, device=self.device,
                        half=self.amp and self.amp_dtype == torch.float16, loss_fn=self.loss_fn,
                        coco_backend=self.cfg.coco_backend, coco=coco, plots=plots,
                        progress="final evaluation of best.pt" if coco else "val")

    def _epoch_row(self, epoch: int, stats: EpochStats, result: EvalResult, seconds: float) -> dict[str, Any]:
        m, mloss = result.metrics, stats.mloss
        vl = result.losses.tolist() if result.losses is not None else [float("nan")] * 3
        row = {"epoch": epoch,
               "train/box_loss": float(mloss[0]), "train/obj_loss": float(mloss[1]),
               "train/cls_loss": float(mloss[2]),
               "metrics/precision": m["precision"], "metrics/recall": m["recall"],
               "metrics/mAP_0.5": m["map50_yolo"], "metrics/mAP_0.5:0.95": m["map_yolo"],
               "val/box_loss": vl[0], "val/obj_loss": vl[1], "val/cls_loss": vl[2]}
        for i, g in enumerate(self.optimizer.param_groups):
            row[f"x/lr{i}"] = g["lr"]
        row["time/epoch_s"] = seconds
        row["train/images_per_s"] = stats.images_per_s
        row["train/nonfinite_steps"] = stats.nonfinite
        return row

    # ------------------------------------------------------------------ summary
    def _base_summary(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"status": "running", "error": None, "run_name": cfg.run_name or self.run_dir.name,
                "axes": cfg.run_axes(), "data_source": self._data_source(),
                "model": {}, "metrics": {k: None for k in SUMMARY_METRICS},
                "best_epoch": None, "epochs_completed": 0, "wall_time_s": 0.0, "train_images_per_s": None,
                "device": self._device_name(), "world_size": self.dist.world_size,
                "versions": package_versions(), "git_rev": git_revision(),
                "data_warnings": {}}

    def _data_source(self) -> str:
        """The dataset as given (its yaml resolved; "synthetic": identity.config.synthetic
        holds its parameters), so that val can evaluate the run's weights on the run's data."""
        data = self.cfg.data
        return data if data == "synthetic" else str(Path(data).resolve())

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return "cpu"

    def _write_summary(self, **updates: Any) -> None:
        self.summary.update(updates)
        self.summary["wall_time_s"] = round(self.state.wall_before + (time.time() - self.t_start), 3)
        self.summary["epochs_completed"] = len(self.state.rows)
        self.summary["best_epoch"] = self.state.best_epoch if self.state.best_epoch >= 0 else None
        if self.state.train_seconds > 0:
            self.summary["train_images_per_s"] = round(self.state.train_images / self.state.train_seconds, 3)
        self.summary["nonfinite_steps"] = self.state.nonfinite.total
        write_summary(self.run_dir / "summary.json", self.summary)

    def _damaged_last_hint(self) -> str:
        return (f"delete it (or move it away), or set resume=false, to start this run over ({self.run_dir}); "
                f"no backup of last.pt is kept")

    def _identify(self) -> dict[str, Any] | None:
        """Load the data, compute this run's identity (identity.py) and hold it against what
        run_dir already has. Returns the summary of a completed run of the same identity (a
        re-run skips it), None to train (fresh, or resuming last.pt, which _resume checks
        again); raises IdentityMismatch when run_dir holds a run of another config."""
        cfg = self.cfg
        for p in remove_orphaned_temps(self.ckpt_dir) + remove_orphaned_temps(self.run_dir):
            LOG.info("removed %s, the temp file of an interrupted write (as big as a checkpoint)", p)
        self.data = self._load_data()
        config = run_identity(cfg, self.data, device_type=self.device.type, world_size=self.dist.world_size,
                              amp=self.amp)
        self.identity = {"digest": identity_digest(config), "config": config}
        if not cfg.resume:
            return None
        last = self.ckpt_dir / "last.pt"
        previous = read_summary(self.run_dir / "summary.json")
        if previous is not None and (previous.get("status") == "completed" or last.is_file()):
            self._check_identity(previous.get("identity"), f"{self.run_dir / 'summary.json'} "
                                 f"({previous.get('status')}, {previous.get('epochs_completed')} epochs)")
            return previous if previous.get("status") == "completed" else None
        if last.is_file():  # no readable summary beside it: the checkpoint says what it is
            state = load_training_checkpoint(last, "cpu", self._damaged_last_hint(), required=("model",))
            self._check_identity(state.get("identity"), str(last))
        return None  # nothing there that a re-run would reuse or report

    def _check_identity(self, stored: dict[str, Any] | None, what: str) -> None:
        if stored is None:
            raise IdentityMismatch(
                f"{what} was written without a run identity (by an older version of this code), so it cannot "
                f"be told whether it is a run of this config; nothing was changed. {RESTART_HINT}")
        if stored.get("digest") != self.identity["digest"]:
            diff = differences(upgraded(stored.get("config") or {}), self.identity["config"])
            if diff or not stored.get("config"):  # no difference: written by older code in an older form
                raise IdentityMismatch(
                    f"{what} is a run of another config; nothing was changed. Differences (stored -> requested): "
                    f"{'; '.join(diff) or 'none listed (digest differs)'}. {RESTART_HINT}")

    # ------------------------------------------------------------------ fit
    def fit(self) -> dict[str, Any]:
        owns_group = ddp.init_process_group(self.dist, self.device)
        try:
            if self.dist.enabled:  # every rank resumes from rank 0's directory
                self.run_dir = Path(ddp.broadcast_from_main(self.dist, str(self.run_dir)))
                self.ckpt_dir = self.run_dir / "checkpoints"
            return self._fit_main() if self.dist.is_main else self._fit_follower()
        finally:
            # DDP's reducer must go before its process group: destroyed after it (at exit), it
            # aborts the process ("terminate called without an active exception")
            self.train_forward = getattr(self, "model", None)
            if owns_group:
                torch.distributed.destroy_process_group()

    def _fit_follower(self) -> dict[str, Any]:
        """Ranks > 0: train their share, write nothing (rank 0 reports for the run)."""
        logging.getLogger("yolo_core").setLevel(logging.WARNING)  # one console log: rank 0's
        done = {"status": "completed", "rank": self.dist.rank, "metrics": {}}
        decision = ddp.broadcast_from_main(self.dist, None)
        if decision == "done":  # rank 0 found the run completed
            return done
        if decision != "train":
            raise RuntimeError(f"rank 0 did not start the run ({decision}); its log says why")
        self.t_start = time.time()
        with self.stop.installed():
            self._fit()
        return done

    def _fit_main(self) -> dict[str, Any]:
        self.t_start = time.time()
        self.summary = self._base_summary()
        held = self._hold_logging()
        try:
            try:
                with self.stop.installed():
                    done = self._identify()
            except BaseException as e:
                ddp.broadcast_from_main(self.dist, type(e).__name__)
                LOG.error("%s: %s", type(e).__name__, e)
                if not isinstance(e, (IdentityMismatch, Preempted, KeyboardInterrupt)):  # a data error fails the run
                    self._close_logging(self._setup_logging(held))
                    self._write_summary(status="failed", error=f"{type(e).__name__}: {e}")
                raise
        finally:
            logging.getLogger("yolo_core").removeHandler(held)
        ddp.broadcast_from_main(self.dist, "done" if done is not None else "train")
        if done is not None:
            LOG.info("%s already completed with this config; nothing to do (resume=false starts over)",
                     self.run_dir)
            return done
        handler = self._setup_logging(held)
        self.summary["identity"] = self.identity
        status = "failed"
        try:
            with self.stop.installed():
                self._write_summary(status="running")
                self._fit()
            status = "completed"
            self._write_summary(status="completed")
        except (Preempted, KeyboardInterrupt) as e:  # stopped from outside: resumable, not a failure
            status = "preempted"
            msg = str(e) if isinstance(e, Preempted) else "KeyboardInterrupt (Ctrl-C)"
            LOG.warning("preempted: %s", msg)
            self._write_summary(status="preempted", error=msg)
            raise
        except BaseException as e:
            msg = f"{type(e).__name__}: {e}"
            LOG.exception("training failed: %s", msg)
            self._write_summary(status="failed", error=msg)
            raise
        finally:
            self.logger.finish(status)
            self._close_logging(handler)
        return self.summary

    @staticmethod
    def _close_logging(handler: logging.Handler) -> None:
        logging.getLogger("yolo_core").removeHandler(handler)
        handler.close()

    def _fit(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed + 1 + self.dist.rank, cfg.deterministic)
        if self.data is None:  # rank 0 loaded it in _identify
            self.data = self._load_data()
        self._check_stop()  # a scan of a large set takes minutes: stop before building anything
        self.summary["data_warnings"] = {"train": self.data.train.skipped, "val": self.data.val.skipped}
        model = self._build_model(self.data.nc).to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # DDP and torch.compile wrap only the training forward (below); EMA, checkpoints and
        # validation use the plain module (a first compiled step takes minutes on a CPU)
        self.train_forward = model
        facts = model_facts(model, cfg.imgsz)
        facts_640 = model_facts(model, 640) if cfg.imgsz != 640 else facts
        self.summary["model"] = {"name": cfg.model, "params": facts["params"],
                                 "gflops": round(facts_640["gflops"], 3), "gflops_imgsz": 640,
                                 "gflops_at_train_imgsz": round(facts["gflops"], 4),
                                 "backbone_params": facts["backbone_params"],
                                 "backbone_gflops": round(facts_640["backbone_gflops"], 3)}
        LOG.info("model %s: %d params, %.2f GFLOPs at 640", cfg.model, facts["params"], facts_640["gflops"])

        self.state.accumulate = max(round(cfg.nbs / cfg.batch_size), 1)
        weight_decay = cfg.hyp["weight_decay"] * cfg.batch_size * self.state.accumulate / cfg.nbs
        groups = build_param_groups(model, weight_decay, backbone_lr_mult=cfg.backbone_lr_mult,
                                    layer_decay=cfg.layer_decay)
        self.optimizer = build_optimizer(groups, cfg.optimizer, cfg.hyp["lr0"], cfg.hyp["momentum"])
        self.lf = lr_lambda(cfg.schedule, cfg.epochs, cfg.hyp["lrf"])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.ema = ModelEMA(model) if cfg.ema and self.dist.is_main else None
        self.train_set, self.val_set, self.train_loader, self.val_loader = self._build_loaders(self.data)
        if self.dist.is_main and not (cfg.resume and (self.ckpt_dir / "last.pt").is_file()):
            self._prepare_fresh_model(model)
        self._resume_rng = None
        self._resume()
        if self.dist.enabled:  # after the resume: DDP starts from rank 0's weights (and anchors) anyway
            self.train_forward = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.loss_fn = self._build_loss(model)  # the anchors are final now
        if cfg.compile:
            self.train_forward = torch.compile(self.train_forward)
        step = TrainStep(model, self.train_forward, self.loss_fn, self.optimizer, self.scaler, self.ema, self.lf,
                         self.device, self.amp, self.amp_dtype, self.dist)
        self.logger.start(str(self.run_dir), cfg.to_dict(),
                          {**self.summary["model"], "axes": self.cfg.run_axes(), "resumed": self.state.start_epoch > 0,
                           "val_split": self.val_split})
        header = results_header(len(self.optimizer.param_groups))

        nb = len(self.train_loader)
        nw = warmup_iterations(cfg.hyp["warmup_epochs"], nb, cfg.warmup_min_iters)
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
        for epoch in range(self.state.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            stats = train_one_epoch(step, self.train_loader, cfg, self.state, epoch, nw, self._check_stop)
            reason = self._close_epoch(epoch, stats, t0, header) if self.dist.is_main else None
            if self.dist.enabled:  # every rank takes the same way out
                reason = ddp.broadcast_from_main(self.dist, reason)
                self._check_stop()
            if reason:
                LOG.info("stopping after epoch %d: %s", epoch + 1, reason)
                self.summary["stopped_early"] = reason
                break
        if not self.dist.is_main:
            return
        self.stop.check()
        self._final_evaluation()

    def _prepare_fresh_model(self, model: torch.nn.Module) -> None:
        """What the official train.py does to a fresh model once the data is loaded (rank 0;
        DDP broadcasts the result): AutoAnchor, then round all weights through fp16."""
        cfg = self.cfg
        if not cfg.noautoanchor:
            records = self.train_set.records
            image_wh = np.array([record_hw(r)[::-1] for r in records], dtype=np.float64)
            self.state.autoanchor = self.summary["autoanchor"] = check_anchors(
                model.head, image_wh, self.train_set.labels, cfg.imgsz, cfg.hyp["anchor_t"], seed=cfg.seed)
        if cfg.round_init_fp16:  # official: model.half().float(), "pre-reduce anchor precision"
            model.half().float()
        self.summary["round_init_fp16"] = cfg.round_init_fp16

    def _build_loss(self, model: torch.nn.Module) -> YOLOv5Loss:
        cfg = self.cfg
        hyp = scale_loss_gains({**cfg.hyp, "label_smoothing": cfg.label_smoothing}, self.data.nc, cfg.imgsz,
                               model.head.nl)
        return YOLOv5Loss(model.head.anchors, self.data.nc,
                          {k: hyp[k] for k in ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma",
                                               "label_smoothing")})

    def _close_epoch(self, epoch: int, stats: EpochStats, t0: float, header: list[str]) -> str | None:
        """Rank 0 after each epoch: validate, results.csv, best.pt/last.pt, logger, summary.
        Returns why training should stop early, or None."""
        cfg = self.cfg
        eval_model = self.ema.ema if self.ema else self.model
        result = self._validate(eval_model, cfg.iou_thres, coco=False)
        row = self._epoch_row(epoch, stats, result, time.perf_counter() - t0)
        self.state.rows.append(row)
        fi = fitness(result.metrics["map50_yolo"], result.metrics["map_yolo"])
        improved = fi >= self.state.best_fitness  # the official saves best.pt on ties too
        if improved:
            self.state.best_fitness, self.state.best_epoch = fi, epoch
        with self.stop.deferred():  # an insisting signal waits for the epoch's files to be whole
            write_results_csv(self.run_dir / "results.csv", self.state.rows, header)
            if improved:  # best before last: a last.pt of epoch e implies a best.pt of an epoch <= e
                atomic_torch_save({"epoch": epoch, "model": eval_model.state_dict(), "model_name": cfg.model,
                                   "model_kwargs": cfg.model_kwargs, "nc": self.data.nc,
                                   "names": self.data.names, "fitness": fi}, self.ckpt_dir / "best.pt")
            atomic_torch_save(self._checkpoint_state(epoch), self.ckpt_dir / "last.pt")
        self.logger.log_epoch(epoch, row)
        self._write_summary(status="running")
        LOG.info("epoch %d/%d: loss %s mAP50 %.4f mAP %.4f (%.1fs)", epoch + 1, cfg.epochs,
                 [round(x, 4) for x in stats.mloss.tolist()], row["metrics/mAP_0.5"],
                 row["metrics/mAP_0.5:0.95"], row["time/epoch_s"])
        # the official EarlyStopping; derived from best_epoch (in last.pt), so a resumed run stops
        # where an uninterrupted one would. patience 0 disables it, as in YOLOv5
        if cfg.patience and epoch - self.state.best_epoch >= cfg.patience:
            return f"no improvement for {cfg.patience} epochs"
        return self.logger.should_stop()

    def _check_stop(self) -> None:
        ddp.raise_if_stopped(self.dist, self.stop, self.device)

    def _final_evaluation(self) -> None:
        """Evaluate best.pt once more (official: IoU 0.65 on COCO); write predictions.json, the
        ground truth they were scored against (eval_gt.json.gz: what the report's per-image
        statistics need) and pr_curve.csv."""
        cfg = self.cfg
        best = load_training_checkpoint(self.ckpt_dir / "best.pt", self.device,
                                        f"train the run again with resume=false ({self.run_dir})", required=("model",))
        model = self.ema.ema if self.ema else self.model
        model.load_state_dict(best["model"])
        iou = cfg.final_iou(coco80=bool(self.data.val.coco_json) and self.data.nc == 80)
        plots = EvalPlots(self.data.nc) if cfg.plots else None
        result = self._validate(model, iou, coco=True, plots=plots)
        atomic_write_json(result.predictions, self.run_dir / "predictions.json")
        gt = self.val_gt or records_to_coco_gt(self.val_split)
        atomic_write_json_gz(evaluated_ground_truth(gt, result.image_ids or []), self.run_dir / "eval_gt.json.gz")
        if result.per_class is not None:
            pc = result.per_class
            write_pr_curve_csv(self.run_dir / "pr_curve.csv", PR_RECALL, pc.pr_curve,
                               [str(self.data.names[int(c)]) for c in pc.classes])
        self.summary["metrics"] = {k: clean_metric(result.metrics.get(k)) for k in SUMMARY_METRICS}
        self.summary["final_eval"] = {"iou_thres": iou, "conf_thres": cfg.conf_thres,
                                      "map50_yolo": clean_metric(result.metrics.get("map50_yolo")),
                                      "map_yolo": clean_metric(result.metrics.get("map_yolo")),
                                      "n_predictions": len(result.predictions),
                                      # val.py's three phases, ms per image on this run's device (batch: val batch)
                                      "speed_ms": {k: round(v, 3) for k, v in (result.speed_ms or {}).items()},
                                      "device": str(self.device)}
        if plots is not None:
            self._write_plots(plots, result)
        table = format_table(per_class_rows(result, self.val_split, self.data.names))
        LOG.info("final evaluation of best.pt (epoch %s, IoU %s):\n%s\n%s", best.get("epoch"), iou, table,
                 format_coco(result.metrics, cfg.coco_backend))
        LOG.info("results saved to %s (weights in %s)", self.run_dir, self.ckpt_dir)
        self.logger.log_final(self.summary, str(self.run_dir))

    def _write_plots(self, plots: EvalPlots, result: EvalResult) -> None:
        """The run's pictures (docs/run_directory.md); each failure only a warning."""
        run, names = self.run_dir, self.data.names

        def results() -> list[Path]:
            plot_results(run / "results.csv", run / "results.png")
            return [run / "results.png"]

        def labels() -> list[Path]:
            plot_labels(self.data.train, names, run / "labels.jpg")
            return [run / "labels.jpg"]

        draw_safely("results.png", results)
        draw_safely("labels.jpg", labels)
        write_eval_plots(plots, result.per_class, names, run)


def train(config: TrainConfig | None = None, logger: RunLogger | None = None, **overrides: Any) -> dict[str, Any]:
    """Train and return the summary: `train(TrainConfig(...))` or `train(epochs=2, imgsz=96)`."""
    if config is None:
        config = TrainConfig(**overrides)
    elif overrides:
        raise TypeError("pass either a TrainConfig or keyword overrides, not both")
    return Trainer(config, logger).fit()
