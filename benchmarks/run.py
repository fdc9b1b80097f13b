"""Run the benchmarks (``make bench``) and write ``benchmarks/results/<name>.json``.

Usage: ``python -m benchmarks.run [--only serving,training] [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import BenchResult, machine_info

log = logging.getLogger("benchmarks")

BENCHMARKS = (
    "serving",
    "training",
    "visual_search",
    "video_rec",
    "soak",
    "event_rec",
    "similar_listings",
    "news_feed",
    "street_view_blur",
    "video_search",
    "harmful_content",
    "people_you_may_know",
    "ray",
    "video_rec_movielens",
    "ad_click_real",
    "visual_training",
    "visual_digits",
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of ``rows`` (the union of their keys, in first-seen order)."""
    if not rows:
        return "(no rows)"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def run_one(name: str, quick: bool, out_dir: Path) -> Path:
    """Run ``benchmarks.bench_<name>`` and write its JSON; return the file written."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    result: BenchResult = module.run(quick=quick)
    payload = {
        **asdict(result),
        "machine": machine_info(),
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    tmp.replace(path)
    log.info(
        "%s: %s (%.1f s)\n%s",
        result.name,
        result.description,
        payload["duration_s"],
        format_table(result.rows),
    )
    log.info("%s summary: %s", result.name, json.dumps(result.summary))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        path = run_one(name, args.quick, args.out)
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
