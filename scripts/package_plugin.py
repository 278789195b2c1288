#!/usr/bin/env python3
"""Build dist/geofm.zip for QGIS's "Install from ZIP": a folder geofm/ with the plugin and its engine, no tests."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP_FILES = ("__init__.py", "metadata.txt", "icon.png", "LICENSE", "README.md")
PACKAGES = ("core", "geofm_qgis")
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".part"}


def plugin_files(repo: Path = REPO) -> list[Path]:
    """The files that make up the installed plugin, relative to ``repo``."""
    files = [Path(name) for name in TOP_FILES if (repo / name).is_file()]
    for package in PACKAGES:
        for path in sorted((repo / package).rglob("*")):
            rel = path.relative_to(repo)
            if path.is_file() and not SKIP_PARTS & set(rel.parts) and path.suffix not in SKIP_SUFFIXES:
                files.append(rel)
    return files


def build(output: Path, repo: Path = REPO) -> Path:
    """Write the zip to ``output`` (folders created) and return its path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in plugin_files(repo):
            zf.write(repo / rel, Path("geofm") / rel)
    tmp.replace(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / "dist" / "geofm.zip")
    args = parser.parse_args()
    path = build(args.output)
    with zipfile.ZipFile(path) as zf:
        count = len(zf.namelist())
    print(f"{path} ({count} files, {path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
