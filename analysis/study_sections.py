"""report.md's verdict and its small / densely packed object sections, and their files."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis import tables
from analysis.study import MIN_BIN_IMAGES, DeltaRow, Study, fmt_ap, fmt_ci, seeds_text
from analysis.verdict import points, verdict_sentence


def _caveats(study: Study, common: dict) -> list[str]:
    """What the sample cannot show, whatever the interval says."""
    out = [f"one validation set ({study.n_images} images, {study.n_objects} objects): the image interval "
           "says how much another draw of images like these could move the delta, not how the backbones "
           "compare on other data"]
    if common.get("data") == "synthetic":
        out.append("the data is the embedded synthetic set: this checks the pipeline and the size of the noise, "
                   "it says nothing about COCO")
    pretrained = {str(c.settings.get("model_kwargs.pretrained")) for c in (study.pair.baseline, study.pair.other)
                  if c.settings is not None and "model_kwargs.pretrained" in c.settings}
    if pretrained & {"null", "None", "False", "false"}:
        out.append("the ConvNeXt trunk started from random weights (train.model_kwargs.pretrained=null), "
                   "not from ImageNet: the study's question is about the pre-trained trunk")
    return out


def verdict_lines(study: Study | None, headline: tables.Pair | None, baseline: str, candidate: str,
                  cols: Sequence[str], common: dict) -> list[str]:
    out = ["## Verdict", ""]
    if headline is None:
        return out + [f"No verdict: no completed {candidate} row with a {baseline} row to compare it with.", ""]
    if not headline.strict:
        return out + [f"No verdict: no {candidate} row was trained under identical conditions to a {baseline} row "
                      f"(the closest pair differs in {', '.join(headline.blocking)}). The criterion is about "
                      "identical training conditions; the study grid conf/experiment/convnext_vs_baseline.yaml "
                      "has such pairs.", ""]
    if headline.baseline.settings is None or headline.other.settings is None:
        return out + ["No verdict: the rows' runs have no recorded identity (older code), so identical training "
                      "conditions cannot be confirmed.", ""]
    if study is None or study.verdict is None:
        reason = study.missing if study is not None else "not computed"
        return out + [f"No verdict: {reason}.", ""]
    v = study.verdict
    out.append(verdict_sentence(v, candidate, baseline))
    out.append("")
    own = "the backbone's own settings" if headline.other.compare == tables.COMPARE else f"{headline.other.compare}"
    out.append(f"- Rows compared: {headline.other.context(cols)}; identical training conditions (every identity "
               f"key but {own} is equal: see Fairness).")
    per = ", ".join(f"seed {tables.fmt_value(s)}: {points(d)}" for s, d in zip(study.seeds, v.pair_deltas))
    out.append(f"- Per seed pair (points): {per}.")
    unpaired = {k: s for k, s in study.unpaired.items() if s}
    if unpaired:
        out.append("- Left out, no partner with the same seed: "
                   + "; ".join(f"{k} seed(s) {seeds_text(s)}" for k, s in unpaired.items()) + ".")
    if v.seed_interval is not None:
        out.append(f"- Seeds: paired t interval [{points(v.seed_interval[0])}, {points(v.seed_interval[1])}] "
                   f"(se {100 * v.se_seed:.2f} points).")
    lo, hi = v.image_interval
    out.append(f"- Images: paired bootstrap, {study.n_resamples} resamples of the {study.n_images} validation "
               f"images (both backbones scored on each resample): [{points(lo)}, {points(hi)}] "
               f"(se {100 * v.se_image:.2f} points).")
    out.append(f"- Method: {v.method}. Supported when the lower bound is above −margin, not supported when "
               "the upper bound is below it (both only with 2 or more seed pairs), otherwise inconclusive.")
    for r in v.reasons:
        out.append(f"- Why {v.decision}: {r}.")
    out.append("- What this sample cannot show: " + "; ".join(_caveats(study, common)) + ".")
    out += [f"- Note: {n}" for n in study.notes]
    out.append("")
    return out


def verdict_headline(study: Study | None, headline: tables.Pair | None, baseline: str, candidate: str) -> str:
    """The verdict sentence without markdown, or why there is none (for the card)."""
    if study is not None and study.verdict is not None:
        return verdict_sentence(study.verdict, candidate, baseline).replace("**", "")
    lines = verdict_lines(study, headline, baseline, candidate, [], {})
    return lines[2] if len(lines) > 2 else "No verdict."


def _delta_cells(r: DeltaRow) -> list[str]:
    return [fmt_ap(r.baseline), fmt_ap(r.candidate), points(r.candidate - r.baseline), fmt_ci(r.delta)]


def detail_lines(study: Study | None, baseline: str, candidate: str) -> list[str]:
    """Small objects, scene density, crowding and per-class changes of the verdict's pair."""
    if study is None or study.verdict is None:
        return []
    seeds = f"mean over seed pairs {seeds_text(study.seeds)}"
    heads = [f"Baseline ({baseline})", f"Candidate ({candidate})", "Δ (points)", "95 % CI (images)"]
    out = ["## Small objects", "",
           f"COCO's ranges (small: area < 32², medium < 96²); {seeds}; intervals from the paired image bootstrap.", ""]
    out.append(tables.md_table(["Metric", *heads], [[r.title, *_delta_cells(r)] for r in study.objects]))
    out += ["", "## Densely packed objects", "",
            "### AP by scene density (objects per image)", "",
            "COCO mAP@0.5:0.95 over the images of each bin only; images without objects are in no bin; "
            f"a bin of fewer than {MIN_BIN_IMAGES} images gets no interval.", ""]
    rows = [[r.name, str(r.n_images), str(r.n_objects), *_delta_cells(r)] for r in study.density]
    out.append(tables.md_table(["Objects per image", "Images", "Objects", *heads], rows))
    out += ["", "### AP by crowding (each object's largest IoU with another object)", "",
            "COCO mAP@0.5:0.95 with the objects outside the bin ignored, as COCO's area ranges do; a detection "
            "takes the bin of the object it overlaps most, one overlapping none by IoU 0.1 (background) is a "
            "false positive in every bin.", ""]
    rows = [[r.name, str(r.n_objects), *_delta_cells(r)] for r in study.crowding]
    out.append(tables.md_table(["Largest IoU", "Objects", *heads], rows))
    if study.errors:
        out += ["", "### What kind of errors changed (TIDE)", "",
                "TIDE's error types (Bolya et al. 2020; analysis/tide.py): dAP is the COCO AP@0.5 points gained "
                "when only that type is fixed by an oracle, counts are false positives (Miss: objects), with "
                "COCO's detection limit (100 per image and class). A negative ΔdAP: the candidate loses less "
                "to that error type.", "",
                tables.md_table(["Error", f"{baseline} dAP", f"{candidate} dAP", "ΔdAP (points)",
                                 f"{baseline} count", f"{candidate} count"],
                                [[t, f"{100 * b:.2f}", f"{100 * c:.2f}", points(c - b), f"{nb:.0f}", f"{nc:.0f}"]
                                 for t, b, c, nb, nc in study.errors])]
    if study.per_class:
        k = min(5, len(study.per_class) // 2) or 1
        picks = study.per_class[-k:][::-1] + [r for r in study.per_class[:k] if r not in study.per_class[-k:]]
        out += ["", f"### Per-class AP (COCO): largest gains and losses, {k} each", "",
                tables.md_table(["Class", f"{baseline} AP", f"{candidate} AP", "Δ (points)"],
                                [[n, fmt_ap(b), fmt_ap(c), points(d)] for n, b, c, d in picks])]
    out.append("")
    return out


def study_frame(study: Study) -> pd.DataFrame:
    """study.csv: every delta of the verdict's pair with its interval."""
    rows = []
    for view, items in (("objects", study.objects), ("density", study.density), ("crowding", study.crowding)):
        for r in items:
            lo, hi = r.delta.interval()
            rows.append({"view": view, "name": r.name, "title": r.title, "n_images": r.n_images,
                         "n_objects": r.n_objects, "baseline": r.baseline, "candidate": r.candidate,
                         "delta": r.candidate - r.baseline, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def write_study_files(study: Study, out: Path) -> dict[str, Path]:
    """verdict.json and study.csv in the report directory."""
    files: dict[str, Path] = {}
    if study.verdict is None:
        return files
    v = study.verdict
    doc = {"decision": v.decision, "metric": "map (COCO mAP@0.5:0.95)", "delta": v.delta, "ci": [v.low, v.high],
           "margin": v.margin, "n_pairs": v.n_pairs, "seeds": [tables._norm(s) for s in study.seeds],
           "pair_deltas": v.pair_deltas, "se_seed": None if math.isnan(v.se_seed) else v.se_seed,
           "se_image": v.se_image, "image_ci": list(v.image_interval),
           "seed_ci": None if v.seed_interval is None else list(v.seed_interval), "method": v.method,
           "reasons": v.reasons, "n_images": study.n_images, "n_resamples": study.n_resamples,
           "baseline_runs": list(study.pair.baseline.runs["run_dir"]),
           "candidate_runs": list(study.pair.other.runs["run_dir"])}
    files["verdict.json"] = out / "verdict.json"
    files["verdict.json"].write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    files["study.csv"] = out / "study.csv"
    study_frame(study).to_csv(files["study.csv"], index=False)
    return files
