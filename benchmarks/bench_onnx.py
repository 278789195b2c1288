"""ONNX benchmark: windows per second of onnxruntime against torch on the CPU, for the same model.

resnet18 + FPN, 5 bands, 4 classes, 128 px windows, batch 8:
1. the model alone: torch (normalise in numpy, forward, softmax) against the exported graph in onnxruntime
   (normalisation and softmax inside), on the same windows of the real scene, best of alternating runs;
2. predict() end to end on the real scene (data/nc_landsat7, 489 × 443 px) with the .geofm and with the .onnx.
The largest probability difference between the two is reported as a check.

Run ``python benchmarks/bench_onnx.py``; results go to ``benchmarks/results/onnx.md``.
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from geofm.core.classes import ClassMap
from geofm.core.events import FinishedEvent
from geofm.core.model import build_model
from geofm.core.normalise import compute_stats, normalise
from geofm.core.onnx_export import OPSET, export_onnx
from geofm.core.onnx_model import OnnxModel
from geofm.core.package import load_package, package_metadata, save_package
from geofm.core.predict import PredictConfig, predict, window_starts
from geofm.core.raster import read_window

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "onnx.md"
SCENE = HERE.parent / "data" / "nc_landsat7" / "landsat_multiband.tif"
TILE, BANDS, CLASSES, BATCH = 128, 5, 4, 8


def make_models(folder: Path) -> tuple[Path, Path]:
    """A resnet18 + FPN package for the scene (global statistics of the scene) and its ONNX export."""
    with rasterio.open(SCENE) as src:
        data, valid = read_window(src, Window(0, 0, src.width, src.height))
        crs, res = src.crs.to_wkt(), src.res
    torch.manual_seed(0)
    model = build_model("resnet18", "fpn", in_channels=BANDS, num_classes=CLASSES).eval()
    classes = ClassMap.from_list([{"value": v} for v in range(1, CLASSES + 1)])
    package = folder / "bench.geofm"
    save_package(package, model, package_metadata(classes=classes, band_count=BANDS, tile_size=TILE,
                                                  stats=compute_stats([(data, valid)]), resolution=res, crs=crs))
    started = time.perf_counter()
    path = export_onnx(package, folder / "bench.onnx")
    print(f"  export {time.perf_counter() - started:.1f} s", flush=True)
    return package, path


def scene_windows() -> list[tuple[np.ndarray, np.ndarray]]:
    with rasterio.open(SCENE) as src:
        rows = window_starts(0, src.height, src.height, TILE, TILE // 2)
        cols = window_starts(0, src.width, src.width, TILE, TILE // 2)
        return [read_window(src, Window(c, r, TILE, TILE)) for r in rows for c in cols]


def model_only(package: Path, path: Path, repeats: int) -> dict[str, float]:
    """Windows/s of each runtime on the scene's windows (inputs prepared in memory), best of ``repeats``."""
    pkg, onnx_model = load_package(package), OnnxModel.load(path, "cpu")
    windows = scene_windows() * 3  # ~1 s per run rather than a fraction of one: less noise
    raw = [np.where(v, d, np.float32(np.nan)) for d, v in windows]

    def run_torch() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(windows), BATCH):
                x = np.stack([normalise(d, v, pkg.stats, pkg.normalisation) for d, v in windows[i : i + BATCH]])
                out.append(torch.softmax(pkg.model(torch.from_numpy(x)), dim=1).numpy())
        return np.concatenate(out)

    def run_onnx() -> np.ndarray:
        return np.concatenate([onnx_model.probabilities(np.stack(raw[i : i + BATCH]))
                               for i in range(0, len(raw), BATCH)])

    run_torch(), run_onnx()  # warm-up
    rates: dict[str, list[float]] = {"torch": [], "onnx": []}
    for _ in range(repeats):
        for name, fn in (("torch", run_torch), ("onnx", run_onnx)):
            start = time.perf_counter()
            result = fn()
            rates[name].append(len(windows) / (time.perf_counter() - start))
            if name == "torch":
                reference = result
            else:
                diff = float(np.abs(result - reference).max())
    return {"windows": len(windows), "torch": max(rates["torch"]), "onnx": max(rates["onnx"]), "max_diff": diff,
            "provider": onnx_model.runtime}


def end_to_end(package: Path, path: Path, folder: Path, repeats: int) -> dict[str, float]:
    """predict() windows/s over the whole scene with each model file, best of ``repeats``."""
    rates: dict[str, list[float]] = {"torch": [], "onnx": []}
    windows = 0
    for _ in range(repeats):
        for name, model in (("torch", package), ("onnx", path)):
            config = PredictConfig(device="cpu", batch_size=BATCH)
            for event in predict(model, SCENE, folder / f"{name}.tif", config):
                if isinstance(event, FinishedEvent):
                    rates[name].append(event.summary["windows_per_s"])
                    windows = event.summary["windows"]
    with rasterio.open(folder / "torch.tif") as a, rasterio.open(folder / "onnx.tif") as b:
        differing = int((a.read() != b.read()).sum())
    return {"windows": windows, "torch": max(rates["torch"]), "onnx": max(rates["onnx"]), "differing": differing}


def report(model: dict, e2e: dict, repeats: int) -> str:
    import onnxruntime

    lines = [
        f"## ONNX runtime against torch ({datetime.date.today()}, `benchmarks/bench_onnx.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other work), CPU only; torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__} "
        f"({model['provider']}, default threads, all graph optimisations). resnet18 + FPN, {BANDS} bands, "
        f"{CLASSES} classes, {TILE} px windows, batch {BATCH}, opset {OPSET}; the real Landsat scene "
        "(489 × 443 px, nodata along its edges). Best of "
        f"{repeats} alternating runs each.",
        "",
        "| | torch windows/s | onnxruntime windows/s | onnxruntime / torch |",
        "|---|---|---|---|",
        f"| model alone ({model['windows']} windows prepared in memory; torch normalises in numpy, the ONNX graph "
        f"itself) | {model['torch']:.2f} | {model['onnx']:.2f} | **{model['onnx'] / model['torch']:.2f}×** |",
        f"| predict() on the scene ({e2e['windows']} windows, overlap 50 %: read, run, blend, write) | "
        f"{e2e['torch']:.2f} | {e2e['onnx']:.2f} | **{e2e['onnx'] / e2e['torch']:.2f}×** |",
        "",
        f"Largest probability difference between the two: {model['max_diff']:.1e}; class-map pixels that differ "
        f"after predict(): {e2e['differing']}.",
        "",
    ]
    return "\n".join(lines)


def main(repeats: int = 5) -> str:
    with tempfile.TemporaryDirectory(prefix="geofm_bench_onnx_") as tmp:
        folder = Path(tmp)
        package, path = make_models(folder)
        print("model alone ...", flush=True)
        model = model_only(package, path, repeats)
        print(f"  {model}", flush=True)
        print("predict() ...", flush=True)
        e2e = end_to_end(package, path, folder, repeats)
        print(f"  {e2e}", flush=True)
    text = report(model, e2e, repeats)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    print(main())
