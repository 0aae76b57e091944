"""Counting what a dataset source skipped, and saying so once.

A real dataset (118k images) may hold a handful of broken files; one warning per split
with the count per reason and the first few files is readable, one warning per file is
not. The counts go to DatasetSplit.skipped and from there to summary.json.
"""
from __future__ import annotations

import logging

# Reasons and their unit (what one count is):
#   corrupt_image    image skipped: unreadable, truncated, unknown format, < 10 px, more
#                    than max_image_pixels (decompression bomb), pixels undecodable (val:
#                    found at scan by a full decode; train: found when loaded, its items
#                    replaced by the next image's, counted after the loader's pass)
#   missing_image    image skipped: listed (txt list / json) but not on disk
#   bad_label        image skipped: a label row has a wrong column count, a non-number,
#                    a negative class, coordinates outside [0, 1] or w/h <= 0
#   size_mismatch    image skipped: the json's width/height differ from the file's
#   missing_label    image KEPT as background: no label file beside it
#   duplicate_label  label row removed (identical to an earlier row of the same image)
#   crowd_annotation COCO annotation with iscrowd=1, not used as a training label
#   bad_box          COCO annotation dropped: box of zero size after clipping to the image
#   clipped_box      COCO box KEPT but clipped: it reached > 1e-3 px outside the image
EXAMPLES_PER_REASON = 3


class SkipLog:
    """Counts per reason plus the first few offending items with their detail."""

    def __init__(self, split: str, source: str) -> None:
        self.split = split
        self.source = source
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, item: str, detail: str = "", n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(f"{item}: {detail}" if detail else item)

    def emit(self, logger: logging.Logger) -> None:
        """One warning for the split (nothing when nothing was skipped)."""
        if not self.counts:
            return
        lines = [f"split {self.split!r} of {self.source}: " +
                 ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))]
        for reason in sorted(self.examples):
            lines += [f"  {reason}: {e}" for e in self.examples[reason]]
            if self.counts[reason] > len(self.examples[reason]):
                lines.append(f"  {reason}: ... ({self.counts[reason]} in all)")
        logger.warning("\n".join(lines))
