"""`make bench`: every benchmark section in one run, a table, and a row block in RESULTS.md.

    python -m benchmarks.run [--quick] [--only data train eval startup infer bootstrap] [--no-save]

Each section (bench_data, bench_train, bench_eval, bench_startup, bench_infer, bench_bootstrap) runs in its own Python
process, so its peak RSS is its own and a crashing section loses only its own rows. The
table gives our figure, the official YOLOv5 v7.0 anchor measured on this kind of machine
(benchmarks/anchors.py; the official code is not run here), the ratio (> 1: we are
faster or leaner) and whether the issue's target is met. The machine's load average is
recorded before and after: the figures of a shared machine are only comparable with
figures taken under similar load.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Row, machine_facts, read_rows

SECTIONS = ("data", "train", "eval", "startup", "infer", "bootstrap")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REPO = Path(__file__).resolve().parents[1]


def run_section(name: str, quick: bool, cache_dir: str | None, timeout: float) -> tuple[list[Row], float, str]:
    """Run benchmarks.bench_<name> in a child process; (rows, seconds, error or '')."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", "--out", str(out)]
        if quick:
            cmd.append("--quick")
        if cache_dir and name != "train":
            cmd += ["--cache-dir", cache_dir]
        t = time.perf_counter()
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return [], time.perf_counter() - t, f"timed out after {timeout:.0f} s"
        seconds = time.perf_counter() - t
        if proc.returncode or not out.is_file():
            return [], seconds, f"exit {proc.returncode}: {proc.stderr.strip()[-1500:]}"
        return read_rows(out), seconds, ""


def wait_idle(limit: float, per_core: float = 0.5) -> float:
    """Sleep until the 1-minute load average is below per_core x cores, or `limit` seconds pass."""
    t0 = time.monotonic()
    threshold = per_core * (os.cpu_count() or 1)
    while os.getloadavg()[0] >= threshold and time.monotonic() - t0 < limit:
        time.sleep(5)
    return time.monotonic() - t0


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(rows: list[Row]) -> str:
    """A markdown table: figure, ours, official anchor, ratio, target, note."""
    lines = ["| section | figure | ours | official / target | ratio | target ratio | met | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r.ratio
        met = "-" if r.target is None or ratio is None else ("yes" if ratio >= r.target else "NO")
        lines.append(f"| {r.section} | {r.name} | {_fmt(r.value)} {r.unit} | "
                     f"{_fmt(r.anchor) + ' ' + r.unit if r.anchor is not None else '-'} | "
                     f"{f'{ratio:.2f}x' if ratio is not None else '-'} | "
                     f"{f'>= {r.target:g}x' if r.target is not None else '-'} | {met} | {r.note} |")
    return "\n".join(lines)


def save(rows: list[Row], facts_before: dict, facts_after: dict, quick: bool, errors: dict[str, str],
         seconds: float, path: Path = RESULTS, started: dt.datetime | None = None) -> None:
    """Append one dated block to RESULTS.md (created with its header on first use)."""
    if not path.exists():
        path.write_text("# Benchmark results (`make bench`)\n\n"
                        "Appended by `python -m benchmarks.run`, newest last. Ratios are against the official "
                        "YOLOv5 v7.0 figures measured on this kind of machine (benchmarks/anchors.py; the official "
                        "code is not run here); > 1 means yolo_core is faster or leaner. A shared machine's "
                        "figures move with its load: compare blocks only at similar load averages.\n")
    f = facts_before
    started = started or dt.datetime.now()
    header = (f"\n## {started.strftime('%Y-%m-%d %H:%M')}{' (quick)' if quick else ''}\n\n"
              f"- machine: {f['cpu']}, {f['cores']} cores; torch {f['torch']} ({f['torch_threads']} threads), "
              f"torchvision {f.get('torchvision')}, timm {f.get('timm')}, numpy {f['numpy']}, "
              f"opencv {f['opencv']}, pycocotools {f.get('pycocotools')}, "
              f"faster-coco-eval {f.get('faster_coco_eval')}, Python {f['python']}"
              f"{', GPU ' + f['gpu'] if f.get('gpu') else ''}\n"
              f"- load average (1/5/15 min): before {f['loadavg']}, after {facts_after['loadavg']}; "
              f"run took {seconds / 60:.1f} min\n")
    if errors:
        header += "".join(f"- section {k} FAILED: {v.splitlines()[-1] if v else ''}\n" for k, v in errors.items())
    with open(path, "a") as fh:
        fh.write(header + "\n" + table(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke run in seconds")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--no-save", action="store_true", help="print only; do not append to RESULTS.md")
    ap.add_argument("--cache-dir", default=None, help="where generated data sets live (default .cache/bench)")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per section")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                    help="before each section wait up to SECONDS for the 1-min load average to drop "
                         "below 0.5 per core (a shared machine's other work skews every figure)")
    args = ap.parse_args(argv)

    started = dt.datetime.now()
    before = machine_facts()
    print(f"machine: {before['cpu']}, {before['cores']} cores, torch {before['torch']}, "
          f"load average {before['loadavg']}", flush=True)
    t0 = time.perf_counter()
    rows: list[Row] = []
    errors: dict[str, str] = {}
    for name in args.only:
        if args.wait_idle > 0:
            waited = wait_idle(args.wait_idle)
            print(f"[{name}] waited {waited:.0f} s for the load to drop: load average {os.getloadavg()[0]:.2f}",
                  flush=True)
        print(f"[{name}] running...", flush=True)
        got, s, err = run_section(name, args.quick, args.cache_dir, args.timeout)
        print(f"[{name}] {len(got)} figures in {s:.0f} s" + (f"; FAILED: {err}" if err else ""), flush=True)
        rows += got
        if err:
            errors[name] = err
    after = machine_facts()
    print()
    print(table(rows))
    print(f"\nload average before {before['loadavg']}, after {after['loadavg']}")
    if not args.no_save:
        save(rows, before, after, args.quick, errors, time.perf_counter() - t0, Path(args.results), started)
        print(f"appended to {args.results}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
