"""Train step: images/s of forward + loss + backward + clip + optimizer step.

The step is the trainer's (yolo_core/train/engine.py, train_one_epoch) on a fixed uint8
batch: /255 on the device, optional channels_last, YOLOv5Loss with train.py's gain
scaling, clip_grad_norm_(10), SGD (nesterov, three param groups) and zero_grad; the EMA
update the trainer does after each optimizer step is left out, as in the official figure
(it is ~1% of a step). NCHW and channels_last models are built side by side, warmed up
(2 steps each) and timed in alternation (6 steps each): the median is the figure, the
best step is in the note (on a shared machine, load only ever adds time). Also the yolov5s eval forward at batch 1 / 640 (official val
runs the model unfused in training; ~0.36 s/image officially).
"""
from __future__ import annotations

import argparse
import time

from . import anchors
from .common import Row, median, peak_rss_mb, set_threads, write_rows

MODELS = {"yolov5s": {}, "convnext_tiny": {"neck": "yolov5s"}}


def fake_targets(bs: int, per_image: int = 10, nc: int = 80, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    n = bs * per_image
    return torch.cat([torch.randint(0, bs, (n, 1), generator=g).float(),
                      torch.randint(0, nc, (n, 1), generator=g).float(),
                      torch.rand(n, 2, generator=g) * 0.8 + 0.1,
                      torch.rand(n, 2, generator=g) * 0.2 + 0.02], 1)


def make_step(name: str, bs: int, imgsz: int, channels_last: bool, device: str = "cpu", amp_dtype=None,
              compile_model: bool = False, ema: bool = True):
    """A closure running one training step of the trainer's recipe; returns it and the model.

    step() trains on a fixed uint8 batch that lives on `device` (synthetic tensors: no
    host transfer); step(imgs, targets) on a batch from a loader."""
    import torch

    from yolo_core import build_model
    from yolo_core.loss import YOLOv5Loss, scale_loss_gains
    from yolo_core.hyp import SCRATCH_LOW
    from yolo_core.optim import build_param_groups
    from yolo_core.train.ema import ModelEMA
    from yolo_core.train.optimizer import build_optimizer

    torch.manual_seed(0)
    model = build_model(name, 80, **MODELS.get(name, {})).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    hyp = scale_loss_gains(dict(SCRATCH_LOW), 80, imgsz, model.head.nl)
    loss_fn = YOLOv5Loss(model.head.anchors, 80, {k: hyp[k] for k in (
        "box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma")})
    opt = build_optimizer(build_param_groups(model, 5e-4), "sgd", 0.01, 0.937)
    ema_model = ModelEMA(model) if ema else None
    fwd = torch.compile(model) if compile_model else model
    use_amp = amp_dtype is not None
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=use_amp and amp_dtype == torch.float16)
    g = torch.Generator().manual_seed(0)
    imgs_u8 = torch.randint(0, 256, (bs, 3, imgsz, imgsz), dtype=torch.uint8, generator=g).to(device)
    fixed_targets = fake_targets(bs).to(device)

    def step(imgs: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> None:
        x = (imgs_u8 if imgs is None else imgs).to(device, non_blocking=True).float() / 255
        targets = fixed_targets if targets is None else targets.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=amp_dtype or torch.float32, enabled=use_amp):
            preds = fwd(x)
            loss, _ = loss_fn(preds, targets)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if ema_model is not None:
            ema_model.update(model)

    return step, model


def time_steps(step, steps: int, warmup: int = 2, sync=lambda: None) -> tuple[float, list[float]]:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return median(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    args = ap.parse_args()
    set_threads(2)
    import torch

    rows = []
    configs = [(8, 320), (4, 640)] if not args.quick else [(2, 64)]
    steps = 6 if not args.quick else 1
    for name in args.models:
        for bs, imgsz in configs:
            # both layouts built side by side and timed in alternation, so that a burst of
            # load from another process hits both alike
            fns = {cl: make_step(name, bs, imgsz, cl, ema=False)[0] for cl in (False, True)}
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(2 if not args.quick else 1):
                for fn in fns.values():
                    fn()
            for _ in range(steps):
                for cl, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    times[cl].append(time.perf_counter() - t)
            for cl in (False, True):
                s, best = median(times[cl]), min(times[cl])
                anchor = anchors.TRAIN.get((name, bs, imgsz))  # (none for --quick's sizes)
                rows.append(Row("train", f"{name} step b{bs}@{imgsz}{' channels_last' if cl else ''}",
                                round(bs / s, 2), "img/s", anchor, True, anchors.TRAIN_TARGET if anchor else None,
                                note=f"{s:.2f} s/step (median), best {best:.2f} s = {bs / best:.2f} img/s",
                                extra={"step_s": [round(t, 3) for t in times[cl]]}))
            del fns
    # eval forward, batch 1, 640 (unfused, as validation during training)
    from yolo_core import build_model

    torch.manual_seed(0)
    model = build_model("yolov5s", 80).eval()
    sz = 640 if not args.quick else 64
    x = torch.rand(1, 3, sz, sz)
    for cl in (False, True):
        m = model.to(memory_format=torch.channels_last) if cl else model
        xi = x.contiguous(memory_format=torch.channels_last) if cl else x
        with torch.no_grad():
            s, times = time_steps(lambda: m(xi), 7 if not args.quick else 1)
        rows.append(Row("train", f"yolov5s eval forward b1@{sz}{' channels_last' if cl else ''}", round(s, 3),
                        "s/img", None if args.quick else anchors.EVAL_FORWARD_S, False, None,
                        note=f"best {min(times):.3f} s"))
    rows.append(Row("train", "peak RSS of the train section", round(peak_rss_mb()), "MB", None, False))
    write_rows(args.out, rows)


if __name__ == "__main__":
    main()
