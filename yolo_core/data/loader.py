"""DataLoader construction: seeded order, seeded augmentation, worker setup, collate.

Reproducibility is built into the sampler rather than into worker state: for every epoch it
draws, from a torch Generator seeded with (seed, epoch), the order of the images and one
seed per item, and hands (index, item_seed) to the dataset. Each item is therefore the
same whatever the number of workers and whatever happened in earlier epochs, so a run
resumed at epoch e (sampler.set_epoch(e)) sees exactly the batches of an uninterrupted one.
Workers are still seeded (numpy, random and the dataset's generators) for any code that
indexes the dataset with plain ints.
"""
from __future__ import annotations

import logging
import math
import random
import signal
from collections.abc import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .dataset import YOLODataset

LOGGER = logging.getLogger(__name__)


def _mix(seed: int, epoch: int) -> int:
    """A well-spread 63-bit generator seed from (seed, epoch)."""
    ss = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, epoch & 0xFFFFFFFFFFFFFFFF])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


class SeededSampler(Sampler):
    """Yields (index, item_seed) pairs; the order is shuffled or sequential.

    Every __iter__ uses the current epoch and then advances it; set_epoch(e) chooses the
    epoch of the next pass (call it with the start epoch when resuming). With world_size > 1
    each rank takes every world_size-th item of the same permutation (padded by wrapping
    to equal length), as DistributedSampler does.
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.world_size) if self.world_size > 1 else self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator()
        g.manual_seed(_mix(self.seed, self.epoch))
        self.epoch += 1
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2 ** 62, (self.n,), generator=g, dtype=torch.int64)
        if self.world_size > 1:
            total = len(self) * self.world_size
            pos = torch.arange(total) % max(self.n, 1)
            order, seeds = order[pos][self.rank::self.world_size], seeds[pos][self.rank::self.world_size]
        return iter(zip(order.tolist(), seeds.tolist()))


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy/random/the dataset from the worker's torch seed; no cv2 threads;
    Ctrl-C ignored.

    torch derives each worker's seed from the loader generator, so this is reproducible;
    cv2's own thread pool inside forked workers oversubscribes the CPUs (and can deadlock).
    A terminal's Ctrl-C reaches the whole process group: a worker would exit at once and the
    trainer, which stops at its next safe point, would fail on the dead worker instead. The
    workers still end with the main process (torch watches its parent).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_seed = torch.initial_seed() % 2 ** 32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    cv2.setNumThreads(0)
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(worker_seed)


class ReportingLoader(DataLoader):
    """A DataLoader whose dataset reports, after every pass, the images its workers found
    undecodable (YOLODataset.report_load_failures): counted in the main process before the
    trainer writes the epoch's summary.json."""

    def __iter__(self):
        try:
            yield from super().__iter__()
        finally:
            report = getattr(self.dataset, "report_load_failures", None)
            if report is not None:
                report()


def build_dataloader(dataset: YOLODataset, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0,
                     drop_last: bool = False, pin_memory: bool | None = None, persistent_workers: bool = True,
                     rank: int = 0, world_size: int = 1) -> DataLoader:
    """A DataLoader over a YOLODataset yielding (imgs uint8 (B,3,H,W), targets (N,6), indices, shapes).

    Rect datasets need shuffle off (shuffling would mix aspect ratios within a batch; it is
    turned off with a warning, as YOLOv5 does) and the dataset's own batch size. pin_memory
    defaults to whether CUDA is available. The sampler is loader.sampler (see SeededSampler).
    The loader is a ReportingLoader (undecodable images are counted after each pass).
    """
    if dataset.rect:
        if shuffle:
            LOGGER.warning("rect batches are incompatible with shuffle; setting shuffle=False")
            shuffle = False
        if batch_size != dataset.batch_size:
            raise ValueError(f"rect dataset was built for batch_size {dataset.batch_size}, loader asks {batch_size}")
        if world_size > 1:
            raise ValueError("rect batches are not supported with world_size > 1")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    return ReportingLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=drop_last, collate_fn=YOLODataset.collate_fn,
                      worker_init_fn=seed_worker, generator=generator,
                      persistent_workers=persistent_workers and workers > 0)
