"""`make gpu-check`: geofm's shipping code paths on a GPU — training, pretraining and prediction.

1. **Training**: the shipping loop (core/loop.Loop running the segmentation task, through the same path the CLI
   and QGIS use: data preparation, the dataset and DataLoader, mixed precision, clipping and checkpoints) trains
   ResNet50 + FPN on 256² tiles, batch 16, for a few epochs on a generated 4-band GeoTIFF.
2. **Pretraining**: the same loop running the self-supervised task (the default method on random crops, as
   ``geofm pretrain``) on a generated 4-band scene, with the shipped crop and batch size and with a batch suited
   to a GPU.
3. **Prediction**: ``predict()`` with the model trained in 1 over a generated 6144² raster (windows read, run,
   blended and written as a GeoTIFF), at the shipped batch size and a larger one.

The first epoch of each run is warm-up (cuDNN autotuning, worker start-up); the later ones are measured: tiles
(or crops) per second over the wall time of the training passes (forward, backward, optimiser, and waiting for
data included; validation and checkpoint writing excluded), peak GPU memory allocated by torch in the measured
epochs, and the share of time spent waiting for the loader (the loop reads the loss every batch, which
synchronises with the GPU, so a wait means the GPU had nothing to do).

Without a GPU it says so and exits 0. Results go to benchmarks/results/gpu.md.
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from geofm.core.config import PredictConfig, PretrainConfig, TrainConfig  # noqa: E402
from geofm.core.device import amp_dtype, resolve_device  # noqa: E402
from geofm.core.events import CheckpointEvent, FinishedEvent, StartEvent  # noqa: E402
from geofm.core.loop import Loop, LoopSettings  # noqa: E402
from geofm.core.predict import predict  # noqa: E402
from geofm.core.pretrain import plan  # noqa: E402
from geofm.core.registries import PRETRAIN_METHODS  # noqa: E402
from geofm.core.tasks.pretrain import PretrainTask  # noqa: E402
from geofm.core.tasks.segmentation import SegmentationTask  # noqa: E402

from rasters import write_raster  # noqa: E402

BANDS, CLASSES = 4, 6


@dataclass
class Setup:
    """What is trained: a generated scene of ``size``² pixels cut into ``tile``² tiles overlapping by half."""

    size: int = 3072
    tile: int = 256
    batch: int = 16
    backbone: str = "resnet50"
    decoder: str = "fpn"
    epochs: int = 4  # the first is warm-up
    pretrain_size: int = 2048
    pretrain_steps: int = 40
    pretrain_runs: tuple[tuple[str, int], ...] = (("resnet18", 16), ("resnet18", 256), ("resnet50", 16),
                                                  ("resnet50", 256))
    predict_size: int = 6144
    predict_batches: tuple[int, ...] = (8, 64)
    device: str = "cuda"


@dataclass
class Result:
    what: str
    tiles: int
    seconds: float
    data_wait_s: float
    peak_gib: float | None
    steps_per_epoch: int
    dtype: torch.dtype | None


def scene(path: Path, size: int, seed: int = 0) -> Path:
    """A generated ``BANDS``-band uint16 GeoTIFF of ``size``² pixels."""
    rng = np.random.default_rng(seed)
    return write_raster(path, rng.integers(0, 4000, (BANDS, size, size), dtype=np.uint16))


def run_measured(what: str, loop: Loop, device: str) -> Result:
    """Run ``loop`` to the end; totals over every epoch after the first, and the peak GPU memory of those."""
    cuda = resolve_device(device).type == "cuda"
    steps = 0
    for event in loop.run():
        if isinstance(event, StartEvent):
            steps = event.steps_per_epoch
        if cuda and isinstance(event, CheckpointEvent) and event.kind == "last" and event.epoch == 1:
            torch.cuda.reset_peak_memory_stats()  # after the warm-up epoch
        if isinstance(event, FinishedEvent):
            break
    measured = loop.timings[1:]
    result = Result(what, tiles=sum(t.tiles for t in measured), seconds=sum(t.seconds for t in measured),
                    data_wait_s=sum(t.data_wait_s for t in measured),
                    peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None, steps_per_epoch=steps,
                    dtype=amp_dtype(loop.device))
    print(f"  {what}: {result.tiles / max(result.seconds, 1e-9):.0f}/s", flush=True)
    return result


def measure_training(setup: Setup, folder: Path) -> Result:
    """The segmentation task in the shipping loop; the model package lands at ``folder/check.geofm``."""
    rng = np.random.default_rng(0)
    img = scene(folder / "img.tif", setup.size)
    lbl = write_raster(folder / "lbl.tif", rng.integers(1, CLASSES + 1, (setup.size, setup.size), dtype=np.uint8))
    config = TrainConfig(images=[str(img)], labels=[str(lbl)], backbone=setup.backbone, decoder=setup.decoder,
                         weights="none", tile_size=setup.tile, overlap=50, batch_size=setup.batch,
                         epochs=setup.epochs, val_fraction=0.0, device=setup.device,
                         output=str(folder / "check.geofm")).validate()
    what = f"{setup.backbone} + {setup.decoder}, {setup.tile}² tiles, batch {setup.batch}"
    return run_measured(what, Loop(SegmentationTask(config), LoopSettings.from_config(config)), setup.device)


def measure_pretraining(setup: Setup, folder: Path) -> list[Result]:
    """The pretraining task in the shipping loop, once per (backbone, batch) of ``setup.pretrain_runs``."""
    img = scene(folder / "unlabelled.tif", setup.pretrain_size, seed=1)
    results = []
    for backbone, batch in setup.pretrain_runs:
        config = PretrainConfig(images=[str(img)], backbone=backbone, batch_size=batch, epochs=3,
                                steps_per_epoch=setup.pretrain_steps, device=setup.device,
                                output=str(folder / f"backbone_{backbone}_{batch}.geofm")).validate()
        what = f"{backbone}, {config.crop_size}² crops, batch {batch}"
        results.append(run_measured(what, Loop(PretrainTask(config), plan(config)), setup.device))
    return results


def measure_prediction(setup: Setup, folder: Path, package: Path) -> list[dict]:
    """predict() with ``package`` over a generated raster, once per batch size (after a warm-up run)."""
    raster = scene(folder / "predict.tif", setup.predict_size, seed=2)
    results = []
    for batch in (setup.predict_batches[0], *setup.predict_batches):  # the first run warms up
        if cuda := torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        config = PredictConfig(device=setup.device, batch_size=batch)
        summary = next(e.summary for e in predict(package, raster, folder / "predicted.tif", config)
                       if isinstance(e, FinishedEvent))
        results.append({"batch": batch, "windows": summary["windows"], "seconds": summary["seconds"],
                        "mpx_per_s": setup.predict_size**2 / 1e6 / summary["seconds"],
                        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None})
        print(f"  predict batch {batch}: {summary['seconds']:.1f} s", flush=True)
    return results[1:]


def _peak(result: Result) -> str:
    return f"{result.peak_gib:.2f} GiB" if result.peak_gib is not None else "n/a"


def _rows(results: list[Result], unit: str) -> list[str]:
    return [f"| {r.what} | {r.steps_per_epoch} | {r.tiles / max(r.seconds, 1e-9):.0f} {unit}/s | {_peak(r)} | "
            f"{r.data_wait_s / max(r.seconds, 1e-9):.1%} |" for r in results]


def report(setup: Setup, training: Result, pretraining: list[Result], prediction: list[dict]) -> str:
    where = torch.cuda.get_device_name() if setup.device.startswith("cuda") else setup.device
    header = "| run | steps per epoch | throughput | peak GPU memory | time waiting on data |"
    return "\n".join([
        "## GPU check (`make gpu-check`)", "",
        f"Run {datetime.date.today()} on {where}, torch {torch.__version__}, {os.cpu_count()} CPU cores, autocast "
        f"{training.dtype}. Epoch 1 of "
        "each run is warm-up; the later epochs are measured (wall time of the training passes, data waits "
        "included, validation and checkpoint writing excluded).", "",
        f"**Training** (core/loop.Loop, segmentation task) on a generated {BANDS}-band {setup.size}² GeoTIFF, "
        f"{setup.epochs - 1} measured epochs:", "", header, "|---|---|---|---|---|", *_rows([training], "tiles"),
        "",
        f"**Pretraining** (the same loop, pretraining task with its default method, "
        f"{PRETRAIN_METHODS.get(PretrainConfig().method).label}, as `geofm pretrain`) on a generated {BANDS}-band "
        f"{setup.pretrain_size}² GeoTIFF, 2 measured epochs each:",
        "", header, "|---|---|---|---|---|", *_rows(pretraining, "crops"), "",
        f"**Prediction** (`predict()`, the training model above, 50 % window overlap, blended, written as a "
        f"GeoTIFF) over a generated {BANDS}-band {setup.predict_size}² raster, after a warm-up run:", "",
        "| batch size | windows | seconds | megapixels/s | peak GPU memory |", "|---|---|---|---|---|",
        *[f"| {p['batch']} | {p['windows']} | {p['seconds']:.1f} | {p['mpx_per_s']:.1f} | "
          f"{'n/a' if p['peak_gib'] is None else format(p['peak_gib'], '.2f') + ' GiB'} |" for p in prediction],
        "",
    ])


def run(setup: Setup, stage: Callable[[str], None] = print) -> str:
    """Measure the three paths as ``setup`` says; the report."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stage("training")
        training = measure_training(setup, folder)
        stage("pretraining")
        pretraining = measure_pretraining(setup, folder)
        stage("prediction")
        prediction = measure_prediction(setup, folder, folder / "check.geofm")
    return report(setup, training, pretraining, prediction)


def main() -> str:
    if not torch.cuda.is_available():
        text = "## GPU check (`make gpu-check`)\n\nNo CUDA GPU on this machine: the GPU path was not measured here.\n"
        print(text)
        return text
    text = run(Setup())
    (REPO / "benchmarks" / "results" / "gpu.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
