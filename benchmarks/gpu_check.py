"""`make gpu-check`: geofm's shipping training loop (core/loop.Loop running the segmentation task) on a GPU.

Trains ResNet50 + FPN on 256² tiles, batch 16, for a few epochs on a generated 4-band GeoTIFF, through the same
``train()`` path the CLI and QGIS use: data preparation, the dataset and DataLoader, mixed precision, clipping
and checkpoints. The first epoch is warm-up (cuDNN autotuning, worker start-up); the later ones are measured:

- tiles/s: training tiles over the wall time of the training passes (forward, backward, optimiser, and waiting
  for data included; validation — there is none here — and checkpoint writing excluded);
- peak GPU memory allocated by torch during the measured epochs;
- the share of that training time spent waiting for the loader to hand over a batch (the loop synchronises
  with the GPU every batch when it reads the loss, so a wait means the GPU had nothing to do).

Without a GPU it says so and exits 0. Results go to benchmarks/results/gpu.md.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from geofm.core.config import TrainConfig  # noqa: E402
from geofm.core.device import amp_dtype, resolve_device  # noqa: E402
from geofm.core.events import CheckpointEvent, FinishedEvent, StartEvent  # noqa: E402
from geofm.core.loop import Loop, LoopSettings  # noqa: E402
from geofm.core.tasks.segmentation import SegmentationTask  # noqa: E402

from rasters import write_raster  # noqa: E402


@dataclass
class Setup:
    """What is trained: a generated scene of ``size``² pixels cut into ``tile``² tiles overlapping by half."""

    size: int = 3072
    bands: int = 4
    classes: int = 6
    tile: int = 256
    batch: int = 16
    backbone: str = "resnet50"
    decoder: str = "fpn"
    epochs: int = 4  # the first is warm-up
    device: str = "cuda"


@dataclass
class Result:
    tiles: int
    seconds: float
    data_wait_s: float
    peak_gib: float | None
    steps_per_epoch: int
    dtype: torch.dtype | None


def measure(setup: Setup, folder: Path) -> Result:
    """Run the shipping loop on a generated scene in ``folder``; the measured epochs' totals."""
    rng = np.random.default_rng(0)
    img = write_raster(folder / "img.tif", rng.integers(0, 4000, (setup.bands, setup.size, setup.size),
                                                        dtype=np.uint16))
    lbl = write_raster(folder / "lbl.tif", rng.integers(1, setup.classes + 1, (setup.size, setup.size),
                                                        dtype=np.uint8))
    config = TrainConfig(images=[str(img)], labels=[str(lbl)], backbone=setup.backbone, decoder=setup.decoder,
                         weights="none", tile_size=setup.tile, overlap=50, batch_size=setup.batch,
                         epochs=setup.epochs, val_fraction=0.0, device=setup.device,
                         output=str(folder / "check.geofm")).validate()
    loop = Loop(SegmentationTask(config), LoopSettings.from_config(config))
    cuda = resolve_device(setup.device).type == "cuda"
    steps = 0
    for event in loop.run():
        if isinstance(event, StartEvent):
            steps = event.steps_per_epoch
        if cuda and isinstance(event, CheckpointEvent) and event.kind == "last" and event.epoch == 1:
            torch.cuda.reset_peak_memory_stats()  # after the warm-up epoch
        if isinstance(event, FinishedEvent):
            break
    measured = loop.timings[1:]
    return Result(
        tiles=sum(t.tiles for t in measured), seconds=sum(t.seconds for t in measured),
        data_wait_s=sum(t.data_wait_s for t in measured),
        peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None, steps_per_epoch=steps,
        dtype=amp_dtype(loop.device),
    )


def report(setup: Setup, result: Result) -> str:
    peak = f"{result.peak_gib:.2f} GiB" if result.peak_gib is not None else "n/a (not a CUDA device)"
    where = torch.cuda.get_device_name() if setup.device.startswith("cuda") else setup.device
    return "\n".join([
        "## GPU check (`make gpu-check`)", "",
        f"{where}, torch {torch.__version__}, autocast {result.dtype}: geofm's training loop (core/loop.Loop, "
        f"segmentation task) on a generated {setup.bands}-band {setup.size}² GeoTIFF; {setup.backbone} + "
        f"{setup.decoder}, {setup.tile}² tiles, batch {setup.batch}, {result.steps_per_epoch} steps per epoch; "
        f"epoch 1 is warm-up, epochs 2–{setup.epochs} are measured ({result.tiles} tiles). Time is the training "
        "passes' wall time, data waits included, checkpoint writing excluded.", "",
        "| tiles/s | peak GPU memory | share of training time waiting on data |", "|---|---|---|",
        f"| {result.tiles / max(result.seconds, 1e-9):.0f} | {peak} | "
        f"{result.data_wait_s / max(result.seconds, 1e-9):.1%} |",
        "",
    ])


def main() -> str:
    if not torch.cuda.is_available():
        text = "## GPU check (`make gpu-check`)\n\nNo CUDA GPU on this machine: the GPU path was not measured here.\n"
        print(text)
        return text
    setup = Setup()
    with tempfile.TemporaryDirectory() as tmp:
        text = report(setup, measure(setup, Path(tmp)))
    (REPO / "benchmarks" / "results" / "gpu.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
