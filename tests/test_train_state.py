"""TrainState (yolo_core/train/state.py): last.pt's progress fields in one object, in the format of earlier versions."""
from __future__ import annotations

import dataclasses

from yolo_core.train.nonfinite import NonFiniteSteps
from yolo_core.train.state import TrainState

# The keys last.pt has held for these fields since before TrainState: an older last.pt must still resume.
CHECKPOINT_KEYS = {"epoch", "best_fitness", "best_epoch", "rows", "train_seconds", "train_images", "last_opt_step",
                   "nonfinite_steps", "autoanchor", "accumulate", "wall_time_s"}


def test_a_checkpoint_restores_every_field() -> None:
    state = TrainState(NonFiniteSteps(5, total=3, consecutive=2), start_epoch=7, best_fitness=0.25, best_epoch=4,
                       rows=[{"epoch": 0}], train_seconds=12.5, train_images=640, last_opt_step=99, accumulate=8,
                       wall_before=30.0, autoanchor={"bpr": 1.0})
    ckpt = state.to_checkpoint(epoch=6, wall_time_s=42.0)
    assert set(ckpt) == CHECKPOINT_KEYS
    back = TrainState.from_checkpoint(ckpt, max_nonfinite_steps=5)
    for f in dataclasses.fields(TrainState):
        if f.name == "nonfinite":  # the total carries over; a run of bad steps does not span a restart
            assert (back.nonfinite.total, back.nonfinite.consecutive, back.nonfinite.limit) == (3, 0, 5)
        elif f.name == "wall_before":
            assert back.wall_before == 42.0
        else:
            assert getattr(back, f.name) == getattr(state, f.name), f.name


def test_an_older_checkpoint_without_the_later_fields_resumes() -> None:
    ckpt = TrainState(NonFiniteSteps(5)).to_checkpoint(epoch=0, wall_time_s=1.0)
    del ckpt["nonfinite_steps"], ckpt["autoanchor"]
    back = TrainState.from_checkpoint(ckpt, max_nonfinite_steps=5)
    assert back.nonfinite.total == 0 and back.autoanchor is None and back.start_epoch == 1
