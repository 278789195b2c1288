"""`make bench-quality`: does geofm, with its shipped defaults, beat a pixel-wise random forest on real scenes?

Scenes: every scene of ``../shared/data`` (``--data`` to point elsewhere), listed once in :data:`SCENES` with its
image, its labels (a class raster, or a vector file and its class field) and its label type. The NC Landsat-7
scene appears three times, once per label type it ships (dense raster ``strata.tif``, 34 polygons, 1000 points).
The scenes are read in place, never copied into the repository; an absent scene is skipped with a line saying so.

Split: vector labels are first rasterised onto the image grid (``rasterio.features``, pixel centres, later
features win — as geofm reads them), so both methods see the same pixel labels. The labelled extent is cut into
square blocks (about :data:`BLOCKS` of them); :func:`block_split` moves blocks to the test set, rarest class first,
until every class that has pixels in two or more blocks is in test (while keeping training pixels of every
class) and the test set holds about 30 % of the labelled pixels. Training labels come only from the other blocks,
less a buffer of :data:`BUFFER_PX` pixels next to test blocks (dense and polygon labels). The split is
deterministic and the same for both methods and every seed. The image stays whole: a model may see the unlabelled
pixels of the test area as input, as an analyst's would; their labels are never trained on (they are nodata in
the training label copy, written to a temporary folder, and they take no part in geofm's own validation split).

Methods, per seed (0, 1, 2 by default):
- random forest: scikit-learn, 200 trees, n_jobs=2, random_state=seed, on the raw band values of every labelled
  training pixel (a random subsample of at most 200,000 pixels when there are more), predicting every test pixel;
- geofm: ``TrainConfig(images=[image], labels=[training label copy], output=..., seed=seed)`` and nothing else —
  the shipped defaults are what is measured — trained with ``geofm.core.train.train``, then
  ``geofm.core.predict.predict`` over the whole image and the test pixels counted here. ``label_field`` is not
  needed because vector labels reach geofm as their rasterised training copy. A run that fails is recorded with
  its message ("fails: …") and the benchmark goes on.

Scores on the test pixels only: mIoU over the classes present in test, overall accuracy, per-class IoU; training
minutes (the forest's fit, geofm's whole ``train()``). Mean ± sd over seeds go into the section of
benchmarks/RESULTS.md (via benchmarks/results/quality.md, gathered like every benchmark's section), the raw
per-seed numbers into benchmarks/results/quality.json.

Short runs for smoke tests only: ``--scenes para --seeds 0 --epochs 2 --extra weights=none``; ``--epochs`` and
``--max-minutes`` are marked in the table as non-default overrides, ``--extra KEY=VALUE`` (repeatable) compares
candidate defaults with the same harness and labels the rows with them. ``--split-only`` prints the split of every
scene (class pixel counts per side) and trains nothing. ``make bench-quality`` uses no override.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DATA = REPO.parent / "shared" / "data"

#: Test share of the labelled pixels, approximate number of blocks over the labelled extent, and the forest.
TEST_SHARE = 0.3
BLOCKS = 36
BUFFER_PX = {"dense": 4, "polygons": 4, "points": 0}
FOREST_TREES = 200
FOREST_MAX_PIXELS = 200_000
SPLIT_ORDER_SEED = 0  # the order blocks are tried in; fixed, so the split never depends on the run's seed


@dataclass(frozen=True)
class SceneSpec:
    """One benchmark scene: files relative to the data folder, and how to read its labels."""

    name: str
    folder: str
    image: str
    labels: str
    field: str | None  # class attribute of vector labels; None for a class raster
    kind: str  # 'dense' | 'polygons' | 'points'
    names: dict[int, str] | None = None  # class names of integer values, where the data README gives them


NC_CLASSES = {1: "developed", 2: "agriculture", 3: "herbaceous", 4: "shrubland", 5: "forest", 6: "water", 7: "sediment"}

#: Every scene of ../shared/data (see its README.md and each folder's README.md / PROVENANCE.json).
SCENES: tuple[SceneSpec, ...] = (
    SceneSpec("nc_dense", "nc_landsat7_landclass96", "landsat_multiband.tif", "strata.tif", None, "dense", NC_CLASSES),
    SceneSpec("nc_polygons", "nc_landsat7_landclass96", "landsat_multiband.tif", "landsat96_polygons.shp", "label",
              "polygons"),
    SceneSpec("nc_points", "nc_landsat7_landclass96", "landsat_multiband.tif", "landsat96_points.shp", "label",
              "points"),
    SceneSpec("zion", "zion_landsat8_nlcd", "landsat8_zion_b2-5.tif", "nlcd_simplified_on_landsat_grid.tif", None,
              "dense", {1: "water", 2: "developed", 3: "barren", 4: "forest", 5: "shrubland", 6: "herbaceous",
                        7: "cultivated", 8: "wetlands"}),
    SceneSpec("aberystwyth", "aber_sentinel2_polygons", "sen2_20210527_aber_10band.tif", "cls_poly_smpls_merged.gpkg",
              "class_name", "polygons"),
    SceneSpec("para", "para_landsat5_polygons", "LT52240631988227_B1-7_stack.tif", "trainingPolygons_lsat.gpkg",
              "class_name", "polygons"),
    SceneSpec("brandenburg", "brandenburg_sentinel2_osm", "s2l1c_T33UUU_20170216_10band_10m.tif",
              "osm_landuse_water_classid.gpkg", "class_name", "polygons"),
    # Names are the data README's reading of the spectra; the source gives none.
    SceneSpec("peru", "peru_landsat8_points", "LC08_232066_20190727.tif", "endmembers_classid_plus1.gpkg", "class_id",
              "points", {1: "water", 2: "bare/urban", 3: "forest", 4: "agriculture"}),
)


# -- the split (pure numpy) ------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Test and training pixels of one scene. ``test`` and ``train`` are disjoint boolean masks [H, W]."""

    test: np.ndarray
    train: np.ndarray
    block: int  # block side in pixels
    origin: tuple[int, int]  # (row, column) of the first block's top-left pixel: the labelled extent's corner
    blocks: int  # blocks holding labelled pixels
    test_blocks: list[tuple[int, int]]  # (block row, block column) of each test block
    not_in_test: list[int]  # classes with pixels in two or more blocks that could not be put in test

    @property
    def test_share(self) -> float:
        return float(self.test.sum() / max(1, self.test.sum() + self.train.sum()))


def block_split(labels: np.ndarray, num_classes: int, share: float = TEST_SHARE, blocks: int = BLOCKS,
                buffer: int = 0) -> Split:
    """Assign square blocks of the labelled extent to test; ``labels`` holds class indices [H, W], -1 unlabelled.

    Blocks (side chosen to give about ``blocks`` of them over the labelled extent) go to test rarest class first,
    one for each class that has pixels in two or more blocks and none yet in test, choosing the block that keeps
    the test share nearest ``share``; then more blocks, tried in a fixed pseudo-random order, while each brings the
    test share nearer ``share``. A block never goes to test when it would leave some class without training
    pixels. Test pixels are the labelled pixels of test blocks; training pixels the labelled pixels of the others,
    less ``buffer`` pixels next to a test block. Deterministic: the same labels always give the same split.
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    labelled = labels >= 0
    empty = np.zeros((h, w), dtype=bool)
    if not labelled.any():
        return Split(empty, empty.copy(), 0, (0, 0), 0, [], [])
    rows, cols = np.nonzero(labelled.any(axis=1))[0], np.nonzero(labelled.any(axis=0))[0]
    r0, c0 = int(rows[0]), int(cols[0])
    eh, ew = int(rows[-1]) - r0 + 1, int(cols[-1]) - c0 + 1
    side = max(1, int(np.ceil(np.sqrt(eh * ew / blocks))))
    nbr, nbc = -(-eh // side), -(-ew // side)
    # pixels per (block, class)
    rr, cc = np.nonzero(labelled)
    block_id = ((rr - r0) // side) * nbc + (cc - c0) // side
    counts = np.zeros((nbr * nbc, num_classes), dtype=np.int64)
    np.add.at(counts, (block_id, labels[rr, cc]), 1)
    sizes = counts.sum(1)
    total = int(sizes.sum())
    target = share * total
    present = sizes > 0
    order = [int(b) for b in np.random.default_rng(SPLIT_ORDER_SEED).permutation(nbr * nbc) if present[b]]
    rank = {b: i for i, b in enumerate(order)}
    in_test = np.zeros(nbr * nbc, dtype=bool)
    train_counts = counts.sum(0)  # per class, in training blocks
    test_px = 0

    def allowed(b: int) -> bool:
        """Moving block b to test leaves every class it holds some training pixels."""
        return not in_test[b] and bool(np.all(train_counts[counts[b] > 0] > counts[b][counts[b] > 0]))

    def move(b: int) -> None:
        nonlocal test_px, train_counts
        in_test[b] = True
        train_counts = train_counts - counts[b]
        test_px += int(sizes[b])

    spread = (counts > 0).sum(0)
    not_in_test = []
    for k in sorted(range(num_classes), key=lambda k: (counts[:, k].sum(), k)):
        if spread[k] < 2 or counts[in_test, k].sum() > 0:
            continue
        candidates = [b for b in order if counts[b, k] > 0 and allowed(b)]
        if not candidates:
            not_in_test.append(k)
            continue
        move(min(candidates, key=lambda b: (abs(test_px + sizes[b] - target), rank[b])))
    for b in order:
        if allowed(b) and abs(test_px + sizes[b] - target) < abs(test_px - target):
            move(b)
    test_area = np.zeros((h, w), dtype=bool)
    near = np.zeros((h, w), dtype=bool)
    test_blocks = []
    for b in np.nonzero(in_test)[0]:
        br, bc = divmod(int(b), nbc)
        test_blocks.append((br, bc))
        y0, x0 = r0 + br * side, c0 + bc * side
        test_area[y0:y0 + side, x0:x0 + side] = True
        near[max(0, y0 - buffer):y0 + side + buffer, max(0, x0 - buffer):x0 + side + buffer] = True
    test = labelled & test_area
    train = labelled & ~near
    return Split(test, train, side, (r0, c0), int(present.sum()), test_blocks, not_in_test)


# -- reading a scene ----------------------------------------------------------------------------------------------
@dataclass
class SceneData:
    """A scene on its image grid: class indices [H, W] (-1: unlabelled or invalid image pixel) and the classes."""

    spec: SceneSpec
    image: Path
    labels_path: Path
    indices: np.ndarray
    values: list[int]  # class value of each index
    names: list[str]
    profile: dict[str, Any]  # the image's CRS, transform and size, for the training label copy


def load_scene(spec: SceneSpec, data: Path) -> SceneData:
    """Read the labels of ``spec`` onto its image grid; vector labels are rasterised with rasterio.features."""
    import rasterio
    from rasterio.warp import Resampling, reproject
    from rasterio.windows import Window

    from geofm.core.labels import read_vector_labels
    from geofm.core.raster import read_window

    folder = data / spec.folder
    image, labels_path = folder / spec.image, folder / spec.labels
    with rasterio.open(image) as src:
        _, valid = read_window(src, Window(0, 0, src.width, src.height))
        profile = {"crs": src.crs, "transform": src.transform, "width": src.width, "height": src.height}
        if spec.field is None:
            with rasterio.open(labels_path) as lbl:
                if (lbl.width, lbl.height) == (src.width, src.height) and lbl.transform.almost_equals(
                        src.transform, precision=abs(src.transform.a) * 1e-3):
                    raw = lbl.read(1)  # same grid (NC's labels carry another CRS tag for the same grid)
                else:
                    raw = np.full((src.height, src.width), lbl.nodata if lbl.nodata is not None else np.nan,
                                  dtype=np.float64)
                    reproject(lbl.read(1).astype(np.float64), raw, src_transform=lbl.transform, src_crs=lbl.crs,
                              src_nodata=lbl.nodata, dst_transform=src.transform, dst_crs=src.crs,
                              dst_nodata=lbl.nodata, resampling=Resampling.nearest)
                ok = np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.ones(raw.shape, bool)
                if lbl.nodata is not None and not np.isnan(lbl.nodata):
                    ok &= raw != lbl.nodata
            values = sorted(int(v) for v in np.unique(raw[ok]))
            names = [(spec.names or {}).get(v, f"class {v}") for v in values]
            as_int = np.where(ok, raw, 0).astype(np.int64)
        else:
            from rasterio.features import rasterize

            shapes = read_vector_labels(labels_path, spec.field, src.crs)
            found = sorted({v for _, v in shapes}, key=lambda v: (isinstance(v, str), v))
            if all(isinstance(v, str) for v in found):  # names get values 1..K in name order, as geofm gives them
                value_of = {n: i + 1 for i, n in enumerate(found)}
                values, names = list(value_of.values()), list(value_of)
            else:
                value_of = {int(v): int(v) for v in found}
                values = sorted(value_of.values())
                names = [(spec.names or {}).get(v, f"class {v}") for v in values]
            burnt = rasterize([(g, value_of[v]) for g, v in shapes], out_shape=(src.height, src.width),
                              transform=src.transform, fill=-1, dtype="int32")
            ok = burnt >= 0
            as_int = np.where(ok, burnt, 0).astype(np.int64)
    lut = {v: i for i, v in enumerate(values)}
    indices = np.full(as_int.shape, -1, dtype=np.int64)
    for v, i in lut.items():
        indices[ok & (as_int == v)] = i
    indices[~valid] = -1
    return SceneData(spec, image, labels_path, indices, values, names, profile)


def split_scene(scene: SceneData) -> Split:
    return block_split(scene.indices, len(scene.values), buffer=BUFFER_PX[scene.spec.kind])


def split_counts(scene: SceneData, split: Split) -> dict[str, dict[str, int]]:
    """Labelled pixels per class on each side of the split."""
    k = len(scene.values)
    out = {}
    for side, mask in (("train", split.train), ("test", split.test)):
        n = np.bincount(scene.indices[mask], minlength=k)
        out[side] = {name: int(c) for name, c in zip(scene.names, n, strict=True)}
    return out


def describe_split(scene: SceneData, split: Split) -> str:
    counts = split_counts(scene, split)
    in_test = sum(1 for c in counts["test"].values() if c)
    lines = [f"{scene.spec.name}: {split.blocks} blocks of {split.block} px, {len(split.test_blocks)} in test; "
             f"train {split.train.sum():,} px, test {split.test.sum():,} px ({split.test_share:.0%}); "
             f"{in_test} of {len(scene.values)} classes in test"]
    for name in scene.names:
        lines.append(f"    {name:>14}: train {counts['train'][name]:>8,}  test {counts['test'][name]:>8,}")
    if split.not_in_test:
        lines.append("    could not be put in test without losing all training pixels: "
                     + ", ".join(scene.names[k] for k in split.not_in_test))
    return "\n".join(lines)


def write_training_labels(scene: SceneData, split: Split, path: Path) -> Path:
    """The training label copy on the image grid: class values on training pixels, nodata everywhere else."""
    import rasterio

    values = np.asarray(scene.values, dtype=np.int64)
    small = values.min() >= 0 and values.max() < 255
    dtype, nodata = ("uint8", 255) if small else ("int32", int(values.min()) - 1)
    out = np.full(scene.indices.shape, nodata, dtype=dtype)
    out[split.train] = values[scene.indices[split.train]]
    profile = {**scene.profile, "driver": "GTiff", "count": 1, "dtype": dtype, "nodata": nodata, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(out, 1)
    return path


# -- the two methods ------------------------------------------------------------------------------------------------
def score(scene: SceneData, split: Split, predicted: np.ndarray) -> dict[str, Any]:
    """Metrics over the test pixels; ``predicted`` holds class indices [H, W] (-1: nothing predicted)."""
    from geofm.core.metrics import ConfusionMatrix

    truth, guess = scene.indices[split.test], predicted[split.test]
    missing = int((guess < 0).sum())
    cm = ConfusionMatrix(len(scene.values), scene.names)
    cm.update(guess[guess >= 0], truth[guess >= 0])
    m = cm.compute()
    per_class = {c["name"]: c["iou"] for c in m["per_class"] if c["pixels"]}
    ious = [v if v is not None else 0.0 for v in per_class.values()]
    return {"miou": float(np.mean(ious)) if ious else None, "overall_accuracy": m["overall_accuracy"],
            "per_class_iou": per_class, "test_pixels": int(split.test.sum()), "unpredicted_test_pixels": missing}


def run_forest(scene: SceneData, split: Split, seed: int) -> dict[str, Any]:
    import rasterio
    from sklearn.ensemble import RandomForestClassifier

    with rasterio.open(scene.image) as src:
        x = src.read().astype(np.float32)
    rows, cols = np.nonzero(split.train)
    subsampled = len(rows) > FOREST_MAX_PIXELS
    if subsampled:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), FOREST_MAX_PIXELS, replace=False))
        rows, cols = rows[keep], cols[keep]
    started = time.perf_counter()
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, n_jobs=2, random_state=seed)
    forest.fit(x[:, rows, cols].T, scene.indices[rows, cols])
    seconds = time.perf_counter() - started
    predicted = np.full(scene.indices.shape, -1, dtype=np.int64)
    predicted[split.test] = forest.predict(x[:, split.test].T)  # the labels it was fitted on: class indices
    return {**score(scene, split, predicted), "train_seconds": seconds, "train_pixels": len(rows),
            "subsampled": subsampled}


class Deadline:
    """A cancel flag for ``train()`` that is set once ``minutes`` have passed (smoke runs only)."""

    def __init__(self, minutes: float | None):
        self.end = None if minutes is None else time.monotonic() + 60 * minutes

    def is_set(self) -> bool:
        return self.end is not None and time.monotonic() > self.end


def run_geofm(scene: SceneData, split: Split, seed: int, overrides: dict[str, Any], max_minutes: float | None,
              folder: Path, also_predict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, predict the whole image and score it; with ``also_predict`` (PredictConfig settings) the same model
    predicts a second time with them, scored under ``"also"`` (a paired comparison: no training noise)."""
    from geofm.core.config import TrainConfig
    from geofm.core.events import EpochEvent
    from geofm.core.train import train

    run_dir = folder / f"geofm_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    labels = folder / "train_labels.tif"
    config = TrainConfig(images=[str(scene.image)], labels=[str(labels)], output=str(run_dir / "model.geofm"),
                         seed=seed, **overrides)
    epochs: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for event in train(config, Deadline(max_minutes)):
            if isinstance(event, EpochEvent):
                epochs.append({"epoch": event.epoch, "train_loss": event.train_loss, "val_loss": event.val_loss,
                               "val_miou": event.metrics.get("mean_iou"), "seconds": event.seconds})
                print(f"      epoch {event.epoch}: loss {event.train_loss:.3f}, val mIoU "
                      f"{event.metrics.get('mean_iou')} ({event.seconds:.0f} s)", flush=True)
    except Exception as err:  # noqa: BLE001 - a failing default is a result to report, not a crash
        return {"error": _one_line(err), "train_seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    if not Path(config.output).exists():
        return {"error": "no model was saved (stopped before the first epoch ended)", "train_seconds": seconds}
    try:
        result = _predicted_score(scene, split, config.output, run_dir / "prediction.tif", None)
        if also_predict:
            result["also"] = {**_predicted_score(scene, split, config.output, run_dir / "prediction_also.tif",
                                                 also_predict), "train_seconds": seconds}
    except Exception as err:  # noqa: BLE001
        return {"error": "prediction: " + _one_line(err), "train_seconds": seconds}
    return {**result, "train_seconds": seconds, "epochs_run": len(epochs), "history": epochs}


def _predicted_score(scene: SceneData, split: Split, model: str, out: Path, settings: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """Predict the whole image with ``model`` (PredictConfig ``settings``) into ``out`` and score the test pixels."""
    import rasterio

    from geofm.core.cli import drive
    from geofm.core.config import PredictConfig
    from geofm.core.predict import predict

    started = time.perf_counter()
    drive(predict(model, scene.image, out, PredictConfig(**(settings or {}))), quiet=True)
    with rasterio.open(out) as src:
        raw = src.read(1)
        nodata = src.nodata
    lut = {v: i for i, v in enumerate(scene.values)}
    predicted = np.full(raw.shape, -1, dtype=np.int64)
    for v, i in lut.items():
        predicted[(raw == v) & (raw != nodata)] = i
    return {**score(scene, split, predicted), "predict_seconds": time.perf_counter() - started}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


# -- the report -----------------------------------------------------------------------------------------------------
def _mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over the seeds that produced numbers; the first failure's text when some did not."""
    ok = [r for r in runs if "error" not in r]
    failed = [r for r in runs if "error" in r]
    names = list(dict.fromkeys(n for r in ok for n in r["per_class_iou"]))
    per_class = {n: float(np.mean([r["per_class_iou"][n] or 0.0 for r in ok if n in r["per_class_iou"]]))
                 for n in names}
    return {"ok": len(ok), "seeds": len(runs), "miou": [r["miou"] for r in ok],
            "oa": [r["overall_accuracy"] for r in ok], "minutes": [r["train_seconds"] / 60 for r in ok],
            "per_class": per_class, "error": failed[0]["error"] if failed else None}


def method_row(scene: str, label: str, s: dict[str, Any], delta: str) -> str:
    if not s["ok"]:
        text = s["error"]
        text = text if len(text) <= 220 else text[:217] + "…"
        return f"| {scene} | {label} | fails: {text.replace('|', '/')} | | | | |"
    seeds = "" if s["ok"] == s["seeds"] else f" ({s['ok']} of {s['seeds']} seeds; fails: {s['error'][:120]})"
    per = " · ".join(f"{n} {v:.2f}" for n, v in s["per_class"].items())
    m = float(np.mean(s["minutes"]))
    minutes = f"{m:.1f}" if m >= 1 else f"{m:.2f}"
    return f"| {scene} | {label} | **{_mean_sd(s['miou'])}**{seeds} | {_mean_sd(s['oa'])} | {minutes} | {delta} | {per} |"


def report(results: dict[str, Any]) -> str:
    settings = results["settings"]
    overrides = settings["overrides"]
    smoke = {k: v for k, v in (("epochs", settings["epochs"]), ("max_minutes", settings["max_minutes"])) if v}
    label = "geofm defaults" if not overrides else "geofm, " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    if smoke:
        label += " + SMOKE " + ", ".join(f"{k}={v}" for k, v in smoke.items())
    name = results.get("name", "quality")
    lines = [
        "## Learning quality on real scenes (`benchmarks/bench_quality.py`)" if name == "quality" else
        f"## Learning quality: candidate `{name}` (`benchmarks/bench_quality.py --name {name}`)",
        "",
        f"Run {results['date']} on {results['machine']}; seeds {', '.join(map(str, settings['seeds']))}.",
        "",
        "Every scene of `../shared/data` (NC once per label type). Vector labels are rasterised onto the image "
        "grid first, so both methods see the same pixel labels. Split: square blocks over the labelled extent "
        f"(about {BLOCKS}); blocks go to test (rarest class first, so every class with pixels in two or more blocks "
        f"is in test where that leaves it training pixels) until test holds about {TEST_SHARE:.0%} of the labelled "
        f"pixels; training labels only from the other blocks, less a buffer of {BUFFER_PX['dense']} px next to "
        "test blocks (dense and polygon labels). The image stays whole; test labels are never trained on, nor used "
        "for geofm's validation. The split is the same for both methods and every seed.",
        "",
        f"Random forest: {FOREST_TREES} trees, n_jobs=2, random_state=seed, raw band values of the labelled "
        f"training pixels (at most {FOREST_MAX_PIXELS:,}, randomly subsampled). geofm: `TrainConfig(images, labels, "
        "output, seed)` and nothing else"
        + (f" but **{', '.join(f'{k}={v}' for k, v in {**overrides, **smoke}.items())}**" if overrides or smoke
           else " (the shipped defaults)")
        + "; predicted over the whole image, scored on the test pixels.",
        "",
        "mIoU: mean IoU over the classes present in test; mean ± sd over seeds; minutes: training only "
        "(the forest's fit, geofm's `train()`); Δ: geofm − forest mIoU in points.",
    ]
    if smoke:
        lines += ["", f"**Smoke run with non-default overrides ({', '.join(f'{k}={v}' for k, v in smoke.items())}): "
                      "these numbers do not measure the defaults.**"]
    lines += ["", "| scene | labels | blocks (side) | train px | test px | classes in test |", "|---|---|---|---|---|---|"]
    for name, sc in results["scenes"].items():
        if "skipped" in sc:
            continue
        sp = sc["split"]
        absent = [n for n, c in sp["test"].items() if not c]
        note = f" (not: {', '.join(absent)})" if absent else ""
        lines.append(f"| {name} | {sc['label_type']}: {sc['labels']}{' · ' + sc['field'] if sc['field'] else ''} | "
                     f"{sp['blocks']} ({sp['block_px']} px) | {sum(sp['train'].values()):,} | "
                     f"{sum(sp['test'].values()):,} ({sp['test_share']:.0%}) | "
                     f"{len(sp['test']) - len(absent)} of {len(sp['test'])}{note} |")
    lines += ["", "| scene | method | test mIoU | overall accuracy | train minutes | Δ mIoU | per-class IoU (means) |",
              "|---|---|---|---|---|---|---|"]
    for name, sc in results["scenes"].items():
        if "skipped" in sc:
            lines.append(f"| {name} | skipped: {sc['skipped']} | | | | | |")
            continue
        forest, ours = summarise(sc["forest"]), summarise(sc["geofm"])
        delta = ""
        if forest["ok"] and ours["ok"]:
            delta = f"{(np.mean(ours['miou']) - np.mean(forest['miou'])) * 100:+.1f}"
        lines.append(method_row(name, label, ours, delta))
        if sc.get("geofm_also"):
            twin = summarise(sc["geofm_also"])
            d = f"{(np.mean(twin['miou']) - np.mean(forest['miou'])) * 100:+.1f}" if forest["ok"] and twin["ok"] else ""
            what = ", ".join(f"{k}={v}" for k, v in settings["also_predict"].items())
            lines.append(method_row(name, f"the same models, predicted with {what}", twin, d))
        note = "" if not any(r.get("subsampled") for r in sc["forest"]) else f" (subsampled to {FOREST_MAX_PIXELS:,} px)"
        lines.append(method_row(name, f"random forest{note}", forest, ""))
    lines.append("")
    return "\n".join(lines)


# -- driver ---------------------------------------------------------------------------------------------------------
def parse_extra(items: list[str], flag: str = "--extra") -> dict[str, Any]:
    """``KEY=VALUE`` TrainConfig overrides (PredictConfig settings for ``--also-predict``); VALUE as JSON when it
    parses (2, 1e-3, [0,1,2], null), else a string."""
    from geofm.core.config import PredictConfig, TrainConfig
    from geofm.core.schema import check_values

    cls = PredictConfig if flag == "--also-predict" else TrainConfig

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{flag} {item!r}: use KEY=VALUE, e.g. weights=none")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    reserved = {"images", "labels", "label_field", "output", "seed"} & set(out)
    if reserved and cls is TrainConfig:
        raise SystemExit(f"{flag} cannot set {', '.join(sorted(reserved))}: the harness sets them")
    try:
        out = check_values(cls, out, flag)
    except Exception as err:  # noqa: BLE001
        raise SystemExit(f"{flag}: {err}") from err
    return out


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help=f"folder of the scenes (default {DATA})")
    p.add_argument("--scenes", nargs="+", choices=[s.name for s in SCENES], help="a subset of the scenes")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="SMOKE TESTS ONLY: override geofm's epochs (marked in the table)")
    p.add_argument("--max-minutes", type=float, help="SMOKE TESTS ONLY: stop geofm's training after this long")
    p.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig override for geofm (repeatable), e.g. weights=none")
    p.add_argument("--also-predict", action="append", default=[], metavar="KEY=VALUE",
                   help="a PredictConfig setting (repeatable) for a second prediction by the same models, reported "
                        "as its own row: a paired comparison, e.g. test_time_flips=true")
    p.add_argument("--split-only", action="store_true", help="print every scene's split and train nothing")
    p.add_argument("--add", action="store_true",
                   help="keep the runs already in NAME.json (same overrides) for the seeds not run now")
    p.add_argument("--name", default="quality",
                   help="results go to benchmarks/results/NAME.md and NAME.json (a candidate's run beside the defaults')")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = arguments(argv)
    overrides = parse_extra(args.extra)
    also = parse_extra(args.also_predict, "--also-predict")
    train_overrides = {**overrides, **({"epochs": args.epochs} if args.epochs else {})}
    specs = [s for s in SCENES if not args.scenes or s.name in args.scenes]
    results: dict[str, Any] = {
        "name": args.name,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "settings": {"seeds": args.seeds, "overrides": overrides, "epochs": args.epochs,
                     "max_minutes": args.max_minutes, "also_predict": also, "test_share": TEST_SHARE, "blocks": BLOCKS,
                     "buffer_px": BUFFER_PX, "forest_trees": FOREST_TREES, "forest_max_pixels": FOREST_MAX_PIXELS,
                     "data": str(args.data)},
        "scenes": {},
    }
    earlier, seeds = _earlier_runs(args.name, results["settings"]) if args.add else ({}, [])
    results["settings"]["seeds"] = sorted(set(args.seeds) | set(seeds))
    results["scenes"].update(earlier)  # scenes not run now stay as they were; the ones run now are replaced
    text = ""
    for spec in specs:
        folder = args.data / spec.folder
        missing = [p for p in (folder / spec.image, folder / spec.labels) if not p.exists()]
        if missing:
            line = f"absent: {', '.join(str(p) for p in missing)}"
            print(f"{spec.name}: skipped, {line}", flush=True)
            results["scenes"][spec.name] = {"skipped": line}
            continue
        scene = load_scene(spec, args.data)
        split = split_scene(scene)
        print(describe_split(scene, split), flush=True)
        counts = split_counts(scene, split)
        entry: dict[str, Any] = {
            "image": f"{spec.folder}/{spec.image}", "labels": f"{spec.folder}/{spec.labels}", "field": spec.field,
            "label_type": spec.kind,
            "split": {"blocks": split.blocks, "block_px": split.block, "test_blocks": split.test_blocks,
                      "test_share": split.test_share, **counts},
            "forest": [], "geofm": [], "geofm_also": [],
        }
        results["scenes"][spec.name] = entry
        if args.split_only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-quality-{spec.name}-") as tmp:
            write_training_labels(scene, split, Path(tmp) / "train_labels.tif")
            for seed in args.seeds:
                print(f"  seed {seed}: random forest", flush=True)
                entry["forest"].append({"seed": seed, **_guarded(run_forest, scene, split, seed)})
                print(f"  seed {seed}: geofm {train_overrides or 'defaults'}", flush=True)
                ours = run_geofm(scene, split, seed, train_overrides, args.max_minutes, Path(tmp), also)
                if also:
                    entry["geofm_also"].append({"seed": seed, **ours.pop("also", {"error": ours.get("error")})})
                entry["geofm"].append({"seed": seed, **ours})
                for method in ("forest", "geofm", "geofm_also")[:3 if also else 2]:
                    r = entry[method][-1]
                    print(f"    {method}: " + (f"fails: {r['error']}" if "error" in r else
                                               f"mIoU {r['miou']:.3f}, OA {r['overall_accuracy']:.3f}, "
                                               f"{r['train_seconds'] / 60:.1f} min"), flush=True)
        for method in ("forest", "geofm", "geofm_also"):
            kept = [r for r in earlier.get(spec.name, {}).get(method, []) if r["seed"] not in args.seeds]
            entry[method] = sorted(kept + entry[method], key=lambda r: r["seed"])
        text = _write(results, args.name)  # after every scene: a stopped run keeps what it finished
    if args.split_only:
        return ""
    sys.path.insert(0, str(HERE))
    import run_all

    run_all.gather()
    print(text)
    return text


def _earlier_runs(name: str, settings: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The scenes and seeds of an earlier NAME.json whose runs ``--add`` keeps; refused when it measured other
    settings."""
    path = HERE / "results" / f"{name}.json"
    if not path.exists():
        return {}, []
    old = json.loads(path.read_text())
    differs = [k for k in ("overrides", "epochs", "max_minutes", "test_share", "blocks", "buffer_px")
               if old["settings"].get(k) != settings[k]]
    differs += ["also_predict"] if old["settings"].get("also_predict", {}) != settings["also_predict"] else []
    if differs:
        raise SystemExit(f"--add: {path} measured other settings ({', '.join(differs)}); use another --name")
    return old["scenes"], old["settings"]["seeds"]


def _write(results: dict[str, Any], name: str) -> str:
    from geofm.core.fileio import write_json

    text = report(results)
    write_json(HERE / "results" / f"{name}.json", results)
    (HERE / "results" / f"{name}.md").write_text(text)
    return text


def _guarded(fn, *args) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - one failing run must not hide the others
        traceback.print_exc()
        return {"error": _one_line(err)}


if __name__ == "__main__":
    main()
    sys.exit(0)

