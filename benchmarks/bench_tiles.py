"""Tile reading speed and memory: every 256 px tile (stride 128) of a generated 20000×20000, 4-band uint16 raster.

Run ``python benchmarks/bench_tiles.py`` (or ``make bench``); results go to ``benchmarks/results/tiles.md``.
The rasters are written once to ``build/bench/`` (not in git, ~3.3 GB) and reused. Each measurement runs in a
fresh process, whose peak RSS is its own ``VmHWM`` (``ru_maxrss`` would carry the parent's peak across exec).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from geofm.core.dataset import SegmentationDataset, build_scenes
from geofm.core.fileio import atomic_path
from geofm.core.normalise import BandStats
from geofm.core.tiles import tile_windows

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "bench"
RESULTS = REPO / "benchmarks" / "results" / "tiles.md"
SIZE, BANDS, TILE, STRIDE, TIMING_EVERY = 20_000, 4, 256, 128, 8


def make_rasters(size: int) -> tuple[Path, Path]:
    """A 4-band uint16 image (tiled 256², uncompressed) and a uint8 class raster (deflate) on the same grid."""
    WORK.mkdir(parents=True, exist_ok=True)
    image, labels = WORK / f"image_{size}.tif", WORK / f"labels_{size}.tif"
    if image.exists() and labels.exists():
        return image, labels
    common = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32633", "tiled": True,
              "blockxsize": 256, "blockysize": 256, "transform": from_origin(500_000, 6_000_000, 10, 10)}  # fmt: skip
    noise = np.random.default_rng(0).integers(0, 500, (BANDS, 256, size), dtype=np.uint16)
    cols = np.arange(size, dtype=np.uint32)
    with atomic_path(image) as tmp_img, atomic_path(labels) as tmp_lbl:
        with rasterio.open(tmp_img, "w", count=BANDS, dtype="uint16", nodata=0, **common) as img, rasterio.open(
            tmp_lbl, "w", count=1, dtype="uint8", nodata=255, compress="deflate", **common
        ) as lbl:
            for row in range(0, size, 256):
                h = min(256, size - row)
                rows = np.arange(row, row + h, dtype=np.uint32)[:, None]
                base = (rows * 3 + cols * 2) % 20_000 + 1000
                data = (base[None] + np.arange(BANDS, dtype=np.uint32)[:, None, None] * 5000 + noise[:, :h]).astype(np.uint16)
                classes = ((rows // 1000 + cols // 1000) % 5 + 1).astype(np.uint8)
                classes[:, :2000] = np.where(rows < 2000, 255, classes[:, :2000])  # an unlabelled corner
                window = Window(0, row, size, h)
                img.write(data, window=window)
                lbl.write(classes[None], window=window)
    return image, labels


def _dataset(image: Path, labels: Path, windows: list[Window]) -> SegmentationDataset:
    scenes, _ = build_scenes([(image, labels)])
    stats = BandStats([11_000.0 + 5000 * b for b in range(BANDS)], [5800.0] * BANDS)
    return SegmentationDataset(scenes, [(0, w) for w in windows], stats)


def worker(kind: str, image: Path, labels: Path) -> dict:
    """One measurement in this (fresh) process: 'full' iterates every tile through the dataset; 'plain' and
    'dataset' time every ``TIMING_EVERY``-th tile by plain rasterio reads or through the dataset."""
    windows = tile_windows(SIZE, SIZE, TILE, STRIDE)
    if kind != "full":
        windows = windows[::TIMING_EVERY]
    start = time.perf_counter()
    if kind == "plain":
        with rasterio.open(image) as img, rasterio.open(labels) as lbl:
            for w in windows:
                img.read(window=w)
                lbl.read(1, window=w)
    else:
        ds = _dataset(image, labels, windows)
        start = time.perf_counter()  # class scan above is not tile reading
        for k in range(len(ds)):
            x, y = ds[k]
            assert x.shape == (BANDS, TILE, TILE) and y.shape == (TILE, TILE)
        ds.close()
    seconds = time.perf_counter() - start
    return {"kind": kind, "tiles": len(windows), "seconds": seconds, "tiles_per_s": len(windows) / seconds,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux VmHWM; ru_maxrss elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(kind: str, image: Path, labels: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, str(image), str(labels)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> Path:
    """Generate the rasters if needed, measure, and write ``benchmarks/results/tiles.md``."""
    t0 = time.perf_counter()
    image, labels = make_rasters(SIZE)
    made = time.perf_counter() - t0
    plain, ds, full = (_run(kind, image, labels) for kind in ("plain", "dataset", "full"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = f"""## Tile reading ({time.strftime('%Y-%m-%d')}, `benchmarks/bench_tiles.py`)

Raster: {SIZE}×{SIZE} px, {BANDS} bands uint16, GeoTIFF tiled 256×256 uncompressed (~{image.stat().st_size / 1e9:.1f} GB),
labels uint8 deflate on the same grid; tiles {TILE} px, stride {STRIDE} px → {full['tiles']} windows.
Machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()},
one process per row, no DataLoader workers, files in the OS page cache; peak RSS is the process's VmHWM and
includes importing torch (~0.5 GB with its CUDA libraries). `build_scenes` and the dataset cap GDAL's
block cache at 256 MB (`cap_gdal_cache`); the plain rasterio row keeps GDAL's default (5 % of RAM), which is why
its RSS is higher. Two CPU cores shared with other work: tiles/s vary by up to ~2× between runs. Writing or finding the rasters
took {made:.0f} s.

| reader | tiles | seconds | tiles/s | peak RSS |
|---|---|---|---|---|
| plain rasterio `read(window=)` image + labels, every {TIMING_EVERY}th window | {plain['tiles']} | {plain['seconds']:.1f} | {plain['tiles_per_s']:.0f} | {plain['peak_rss_mb']:.0f} MB |
| `SegmentationDataset[k]` (read, labels → indices, normalise, flip/rot90, tensors), same windows | {ds['tiles']} | {ds['seconds']:.1f} | {ds['tiles_per_s']:.0f} | {ds['peak_rss_mb']:.0f} MB |
| `SegmentationDataset[k]`, **every** window | {full['tiles']} | {full['seconds']:.1f} | {full['tiles_per_s']:.0f} | **{full['peak_rss_mb']:.0f} MB** |

Peak RSS over the full pass {'stays under' if full['peak_rss_mb'] < 1024 else 'EXCEEDS'} 1 GB.
Timing rows use every {TIMING_EVERY}th window to keep the run short; the last row iterates all of them.
"""
    with atomic_path(RESULTS) as tmp:
        tmp.write_text(text)
    print(text)
    return RESULTS


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "IMAGE", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))))
    else:
        main()
