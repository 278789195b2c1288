"""`make bench`: run every benchmark and gather their sections into benchmarks/RESULTS.md.

Each ``bench_*.py`` has a ``main()`` that writes ``benchmarks/results/<name>.md``; a benchmark that fails is
reported in RESULTS.md rather than hiding the others. ``make bench ONLY=tiles`` runs one. The learning-quality
benchmark (hours on a CPU) runs only by name: ``make bench-quality`` or ``make bench ONLY=quality``.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
#: Benchmarks too long for `make bench`; they run when named (ONLY=...) or by their own make target.
BY_NAME_ONLY = {"bench_quality", "bench_pretrain"}


def gather() -> None:
    """Rewrite RESULTS.md from every benchmark's section in results/*.md (one benchmark's rerun keeps the others)."""
    sections = [p.read_text() for p in sorted((HERE / "results").glob("*.md"))]
    header = (f"# geofm benchmark results\n\nGathered {datetime.date.today()} on {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, Python {platform.python_version()}. Each section names the script that "
              "wrote it and when it was last run.\n\n")
    (HERE / "RESULTS.md").write_text(header + "\n".join(sections))


def main() -> int:
    only = os.environ.get("ONLY")
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        if only and name != f"bench_{only}" or not only and name in BY_NAME_ONLY:
            continue
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            failed.append(name)
            traceback.print_exc()
    gather()
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
