"""`make demo`: train on the bundled Landsat-7 scene with a spatial hold-out, evaluate it, predict the whole scene.

The right-most 30 % of columns are never used in training; the model is scored there. Everything lands in
``outputs/demo/``: the model package, metrics JSON, a loss-curve PNG and ``prediction.tif`` (opens in QGIS with
its class colours).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import rasterio  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from geofm.core.cli import drive, print_metrics  # noqa: E402
from geofm.core.config import (
    PredictConfig,  # noqa: E402
    TrainConfig,  # noqa: E402
)
from geofm.core.evaluate import evaluate  # noqa: E402
from geofm.core.events import EpochEvent  # noqa: E402
from geofm.core.fileio import write_json  # noqa: E402
from geofm.core.predict import predict  # noqa: E402
from geofm.core.train import train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCENE = REPO / "data" / "nc_landsat7"
IMAGE, LABELS = SCENE / "landsat_multiband.tif", SCENE / "strata.tif"
CLASSES = [  # GRASS landclass96, with colours an analyst expects
    {"value": 1, "name": "developed", "colour": "#e31a1c"},
    {"value": 2, "name": "agriculture", "colour": "#ffd92f"},
    {"value": 3, "name": "herbaceous", "colour": "#b2df8a"},
    {"value": 4, "name": "shrubland", "colour": "#a6761d"},
    {"value": 5, "name": "forest", "colour": "#1b7837"},
    {"value": 6, "name": "water", "colour": "#1f78b4"},
    {"value": 7, "name": "sediment", "colour": "#bdbdbd"},
]
HOLDOUT_SHARE = 0.3

#: The demo's settings, chosen by the measurements in docs/defaults.md.
DEMO = dict(backbone="resnet18", weights="none", decoder="fpn", tile_size=64, overlap=50, batch_size=8, epochs=30,
            lr=1e-3, val_fraction=0.2, split_block=128, class_weights="none", normalisation="global", seed=0)


def crop(src_path: Path, window: Window, out: Path) -> Path:
    """Write ``window`` of ``src_path`` to ``out`` with its georeferencing."""
    with rasterio.open(src_path) as src:
        profile = src.profile | {"width": int(window.width), "height": int(window.height),
                                 "transform": src.window_transform(window)}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


def make_holdout(folder: Path) -> dict[str, Path]:
    """Split the scene by columns: the left 70 % for training, the right 30 % held out."""
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(IMAGE) as src:
        cut = round(src.width * (1 - HOLDOUT_SHARE))
        left, right = Window(0, 0, cut, src.height), Window(cut, 0, src.width - cut, src.height)
    return {
        "train_image": crop(IMAGE, left, folder / "train_image.tif"),
        "train_labels": crop(LABELS, left, folder / "train_labels.tif"),
        "holdout_image": crop(IMAGE, right, folder / "holdout_image.tif"),
        "holdout_labels": crop(LABELS, right, folder / "holdout_labels.tif"),
    }


def train_and_score(out: Path, quiet: bool = False, **overrides) -> tuple[dict, list[EpochEvent], float]:
    """Train on the left 70 %, score on the right 30 %; returns (hold-out metrics, epoch events, seconds)."""
    parts = make_holdout(out / "data")
    cfg = TrainConfig(images=[str(parts["train_image"])], labels=[str(parts["train_labels"])], classes=CLASSES,
                      output=str(out / "model.geofm"), **{**DEMO, **overrides})
    epochs: list[EpochEvent] = []
    started = time.perf_counter()

    def keep(events):
        for e in events:
            if isinstance(e, EpochEvent):
                epochs.append(e)
            yield e

    drive(keep(train(cfg)), quiet=quiet)
    seconds = time.perf_counter() - started
    result = drive(evaluate(cfg.output, parts["holdout_image"], parts["holdout_labels"],
                             output_json=out / "holdout_metrics.json"), quiet=True)
    return result.summary, epochs, seconds


def loss_curve(epochs: list[EpochEvent], path: Path) -> None:
    """Training and validation loss, and validation mIoU, per epoch."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    x = [e.epoch for e in epochs]
    ax.plot(x, [e.train_loss for e in epochs], label="training loss", color="#1f78b4")
    ax.plot(x, [e.val_loss for e in epochs], label="validation loss", color="#e31a1c")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax2 = ax.twinx()
    ax2.plot(x, [e.metrics.get("mean_iou") for e in epochs], label="validation mIoU", color="#1b7837", ls="--")
    ax2.set_ylabel("mIoU")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper right", bbox_to_anchor=(0.88, 0.88))
    ax.set_title("geofm demo: NC Landsat-7, 7 land-cover classes")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "demo")
    parser.add_argument("--epochs", type=int, default=DEMO["epochs"])
    args = parser.parse_args()
    out = args.out
    metrics, epochs, seconds = train_and_score(out, epochs=args.epochs)
    loss_curve(epochs, out / "loss_curve.png")
    print(f"\nHold-out (right-most {HOLDOUT_SHARE:.0%} of columns, never trained on), after {seconds / 60:.1f} min:")
    print_metrics(metrics)
    drive(predict(out / "model.geofm", IMAGE, out / "prediction.tif", PredictConfig(confidence=True)))
    write_json(out / "summary.json", {"holdout": metrics, "train_seconds": seconds})
    print(f"\nWrote {out}/: model.geofm, holdout_metrics.json, loss_curve.png, prediction.tif")
    return 0


if __name__ == "__main__":
    sys.exit(main())
