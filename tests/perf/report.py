"""One benchmark report: every figure of a `make bench` run in one table and
one JSON file, and the comparison of two runs.

A benchmark calls :func:`record` for each figure it measures next to its
baseline (the raw datastore, the direct call, the previous design), in the
same run::

    report.record("serviceability Check p99 vs raw Redis HGET", ours=1.78,
                  baseline=0.106, unit="ms", better="lower")

At the end of the session (tests/perf/conftest.py) the table is printed
(path, ours, baseline, ratio ours/baseline) and written to
``.bench/<UTC time>.json`` (git-ignored; ``.bench/latest.json`` is a copy).

    python -m tests.perf.report show [RUN]        # the table of a run (default: latest)
    python -m tests.perf.report compare A B       # `make bench-compare A B`

A run is a file path, a file name under .bench/ (with or without .json),
``latest`` or ``previous``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(os.environ.get("ECOM_BENCH_DIR", ROOT / ".bench"))


@dataclass(frozen=True)
class Figure:
    """One measured figure next to its baseline."""

    path: str
    ours: float
    baseline: float | None
    unit: str
    better: str  # "higher" or "lower": which way is good for `ours`
    bench: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.baseline != self.baseline:
            return None
        return self.ours / self.baseline  # type: ignore[operator]


_FIGURES: list[Figure] = []


def record(path: str, ours: float, baseline: float | None, *, unit: str, better: str,
           note: str = "") -> Figure:
    """Add one figure to this run's report (and return it)."""
    if better not in ("higher", "lower"):
        raise ValueError("better must be 'higher' or 'lower'")
    bench = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0].rsplit("/", 1)[-1]
    fig = Figure(path, float(ours), None if baseline is None else float(baseline), unit, better,
                 bench or Path(sys.argv[0]).stem, note)
    _FIGURES.append(fig)
    return fig


def figures() -> list[Figure]:
    return list(_FIGURES)


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def table(figs: list[Figure]) -> str:
    """The report table: path, ours, baseline, ratio (ours/baseline)."""
    if not figs:
        return "no benchmark figures recorded"
    width = max(len(f.path) for f in figs)
    lines = [f"{'path':<{width}}  {'ours':>12}  {'baseline':>12}  {'ratio':>8}  unit",
             "-" * (width + 48)]
    for f in figs:
        ratio = f.ratio
        lines.append(
            f"{f.path:<{width}}  {_num(f.ours):>12}  {_num(f.baseline):>12}  "
            f"{'-' if ratio is None else f'{ratio:.3f}x':>8}  {f.unit}"
            f" ({f.better} is better)" + (f"  {f.note}" if f.note else "")
        )
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def write(figs: list[Figure], directory: Path = BENCH_DIR) -> Path:
    """Write the run as JSON; returns its path (latest.json is a copy)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc = {
        "run": stamp,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figs],
    }
    out = directory / f"{stamp}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    shutil.copyfile(out, directory / "latest.json")
    return out


def _runs(directory: Path = BENCH_DIR) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if p.name != "latest.json")


def resolve(name: str, directory: Path = BENCH_DIR) -> Path:
    """A run named as a path, a file under .bench/, `latest` or `previous`."""
    runs = _runs(directory)
    if name in ("latest", "previous"):
        index = -1 if name == "latest" else -2
        if len(runs) < -index:
            raise SystemExit(f"no {name} run under {directory}")
        return runs[index]
    for candidate in (Path(name), directory / name, directory / f"{name}.json"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"no benchmark run {name!r} (runs: {', '.join(p.stem for p in runs)})")


def load(path: Path) -> list[Figure]:
    doc = json.loads(path.read_text())
    return [Figure(**{k: v for k, v in f.items() if k != "ratio"}) for f in doc["figures"]]


def compare(a: list[Figure], b: list[Figure]) -> str:
    """Each path's figure in run A and run B, the change, and whether that
    change is for the better."""
    by_a = {f.path: f for f in a}
    by_b = {f.path: f for f in b}
    paths = list(by_a) + [p for p in by_b if p not in by_a]
    width = max((len(p) for p in paths), default=4)
    lines = [f"{'path':<{width}}  {'A':>10}  {'B':>10}  {'change':>8}  "
             f"{'ratio A':>8}  {'ratio B':>8}  verdict",
             "-" * (width + 64)]
    for p in paths:
        fa, fb = by_a.get(p), by_b.get(p)
        if fa is None or fb is None:
            only = "only in B" if fa is None else "only in A"
            lines.append(f"{p:<{width}}  {_num(fa.ours if fa else None):>10}  "
                         f"{_num(fb.ours if fb else None):>10}  {'':>8}  {'':>8}  {'':>8}  {only}")
            continue
        change = (fb.ours - fa.ours) / fa.ours if fa.ours else math.nan
        better = change > 0 if fb.better == "higher" else change < 0
        verdict = "same" if abs(change) < 0.05 else ("better" if better else "worse")
        ra, rb = fa.ratio, fb.ratio
        lines.append(
            f"{p:<{width}}  {_num(fa.ours):>10}  {_num(fb.ours):>10}  {change:>+8.1%}  "
            f"{'-' if ra is None else f'{ra:.3f}x':>8}  {'-' if rb is None else f'{rb:.3f}x':>8}"
            f"  {verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.report",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    show = sub.add_parser("show", help="print the table of one run")
    show.add_argument("run", nargs="?", default="latest")
    cmp_ = sub.add_parser("compare", help="compare two runs, A then B")
    cmp_.add_argument("a", nargs="?", default="previous")
    cmp_.add_argument("b", nargs="?", default="latest")
    sub.add_parser("list", help="list the recorded runs")
    args = parser.parse_args(argv)
    if args.cmd == "show":
        path = resolve(args.run)
        print(f"{path}:\n{table(load(path))}")
    elif args.cmd == "compare":
        pa, pb = resolve(args.a), resolve(args.b)
        print(f"A = {pa}\nB = {pb}\n{compare(load(pa), load(pb))}")
    else:
        for p in _runs():
            doc = json.loads(p.read_text())
            print(f"{p.stem}  commit {doc.get('commit')}{'+' if doc.get('dirty') else ''}  "
                  f"{len(doc['figures'])} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
