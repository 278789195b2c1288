"""``geofm`` on the command line: check, train, evaluate, info and predict. Errors print without a traceback."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tqdm import tqdm

from .cli_settings import add_setting_flags, values_from_args
from .config import PredictConfig, TrainConfig
from .errors import GeoFMError, GeoFMWarning
from .events import CancelledEvent, EpochEvent, Event, FinishedEvent, ProgressEvent, StartEvent, StepEvent, WarningEvent

EXIT_UNUSABLE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geofm`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("always", GeoFMWarning)
    warnings.showwarning = lambda msg, *a, **k: print(f"Warning: {msg}", file=sys.stderr)
    try:
        return args.run(args)
    except GeoFMError as err:
        if args.debug:
            traceback.print_exc()
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `geofm info … | head -1`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# -- commands --------------------------------------------------------------------------------------------------------
def _gdal_said(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command with GDAL's error lines collected rather than printed raw ('ERROR 1: …'): added to geofm's
    message when the command fails (unless it says them already), printed as warnings when it succeeds."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from .fileio import gdal_messages

        with gdal_messages() as said:
            try:
                code = handler(args)
            except GeoFMError as err:
                extra = [m for m in dict.fromkeys(said) if m not in str(err)]
                if extra:
                    err.args = (f"{err}\nGDAL said: {'; '.join(extra[:3])}",)
                raise
        for message in list(dict.fromkeys(said))[:5]:
            print(f"Warning: GDAL: {message}", file=sys.stderr)
        return code
    return run


@_gdal_said
def _check(args: argparse.Namespace) -> int:
    from .fileio import check_outputs
    from .grid import ALIGN_LABELS, UNUSABLE, check_grid, write_aligned_labels

    check_outputs({"aligned labels": args.align_to}, {"image": args.image, "labels": args.labels})
    report = check_grid(args.image, args.labels, args.tile)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for name, r in (("Image", report.image), ("Labels", report.labels)):
            print(f"{name}: {r.path}\n  {r.bands} band(s) {', '.join(sorted(set(r.dtypes)))}, nodata {r.nodata}, "
                  f"{r.crs}, {r.resolution[0]:g} × {r.resolution[1]:g}, {r.size[0]} × {r.size[1]} px")
        print(report.summary)
    if report.verdict == ALIGN_LABELS and args.align_to:
        out = write_aligned_labels(args.labels, args.image, args.align_to)
        print(f"Aligned labels written to {out}")
        return 0
    return EXIT_UNUSABLE if report.verdict in (UNUSABLE, ALIGN_LABELS) else 0


@_gdal_said
def _train(args: argparse.Namespace) -> int:
    from .distributed import is_main_process
    from .fileio import check_train_outputs
    from .train import train

    config = _train_config(args)
    check_train_outputs(config, args.config)
    drive(train(config), quiet=not is_main_process())
    return 0


@_gdal_said
def _evaluate(args: argparse.Namespace) -> int:
    from .config import is_vector
    from .errors import ConfigError
    from .evaluate import evaluate
    from .fileio import check_outputs

    cfg = PredictConfig.from_dict(values_from_args(args, PredictConfig), source="the command line")
    out = args.out or None
    check_outputs({"metrics JSON": out}, {"model package": args.model, "image": args.image, "labels": args.labels})
    if is_vector(args.labels) and not args.label_field:
        raise ConfigError("vector labels need the name of their class field", path=args.labels,
                          fix="pass --label-field with the attribute that holds each feature's class")
    result = drive(evaluate(args.model, args.image, args.labels, args.label_field, out, cfg, args.align_labels),
                    quiet=args.json)
    metrics = result.summary if result else {}
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print_metrics(metrics)
    return 0


@_gdal_said
def _info(args: argparse.Namespace) -> int:
    from .package import load_package

    pkg = load_package(args.model)
    meta = pkg.metadata
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    arch = meta["architecture"]
    print(f"Model package {args.model}")
    print(f"  {arch['backbone']} + {arch['decoder']} decoder, {pkg.in_channels} band(s), tile {pkg.tile_size} px, "
          f"normalisation {pkg.normalisation}")
    if pkg.resolution:
        print(f"  trained at {pkg.resolution[0]:g} × {pkg.resolution[1]:g} map units per pixel")
    print("  classes: " + ", ".join(f"{c.value} {c.name} ({c.colour})" for c in pkg.classes.classes))
    print_metrics(meta.get("metrics") or {})
    return 0


@_gdal_said
def _predict(args: argparse.Namespace) -> int:
    from .fileio import check_outputs
    from .predict import confidence_path, predict

    cfg = PredictConfig.from_dict(values_from_args(args, PredictConfig), source="the command line")
    check_outputs({"class map": args.out, "probabilities raster": cfg.probabilities,
                   "confidence raster": confidence_path(args.out) if cfg.confidence else None},
                  {"model package": args.model, "image": args.image})
    if cfg.resample_to_training:
        from .raster import require_geotransform

        require_geotransform(args.image, "resampled to the training resolution",
                             "georeference the raster (QGIS: Georeferencer, or export it as a GeoTIFF with its CRS and "
                             "extent), or predict without --resample")
    result = drive(predict(args.model, args.image, args.out, cfg))
    if result:
        print(f"Prediction written to {result.path or args.out}")
    return 0


# -- helpers ---------------------------------------------------------------------------------------------------------
def drive(events: Iterable[Event], quiet: bool = False) -> FinishedEvent | None:
    """Consume a job's events with progress bars; return its FinishedEvent (None when cancelled)."""
    bar: tqdm | None = None
    try:
        for event in events:
            if quiet:
                if isinstance(event, FinishedEvent):
                    return event
                continue
            if isinstance(event, StartEvent):
                print(f"Training on {event.train_tiles} tiles, validating on {event.val_tiles} ({event.device}).")
                if event.message:
                    print(event.message)
            elif isinstance(event, StepEvent):
                if bar is None or event.step == 1:
                    if bar is not None:
                        bar.close()
                    bar = tqdm(desc=f"epoch {event.epoch}", unit="step", leave=False, file=sys.stderr)
                bar.update(1)
                bar.set_postfix(loss=f"{event.loss:.3f}", tiles_s=f"{event.tiles_per_s:.1f}")
            elif isinstance(event, EpochEvent):
                if bar is not None:
                    bar.close()
                    bar = None
                miou = event.metrics.get("mean_iou")
                val = f", validation loss {event.val_loss:.4f}" if event.val_loss is not None else ""
                score = f", mIoU {miou:.3f}" if miou is not None else ""
                print(f"epoch {event.epoch}: train loss {event.train_loss:.4f}{val}{score} ({event.seconds:.0f} s)")
            elif isinstance(event, ProgressEvent):
                if bar is None:
                    bar = tqdm(total=event.total, desc=event.message or "windows", unit="win", file=sys.stderr)
                bar.n = event.done
                bar.refresh()
            elif isinstance(event, WarningEvent):
                print(f"Warning: {event.message}", file=sys.stderr)
            elif isinstance(event, CancelledEvent):
                print(event.message)
                return None
            elif isinstance(event, FinishedEvent):
                return event
    finally:
        if bar is not None:
            bar.close()
    return None


def print_metrics(metrics: dict[str, Any]) -> None:
    """Overall accuracy, mean IoU and a per-class IoU / F1 table, as ConfusionMatrix.compute gives them."""
    if not metrics.get("per_class"):
        return
    print(f"  overall accuracy {metrics['overall_accuracy']:.3f}, mean IoU {metrics['mean_iou']:.3f}")
    for c in metrics["per_class"]:
        iou = "—" if c["iou"] is None else f"{c['iou']:.3f}"
        f1 = "—" if c["f1"] is None else f"{c['f1']:.3f}"
        print(f"    {c['name']:<16} IoU {iou:>6}  F1 {f1:>6}  ({c['pixels']:,} px)")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Flags override the JSON config, which overrides the defaults."""
    base = TrainConfig.from_json(args.config).to_dict() if args.config else {}
    return TrainConfig.from_dict({**base, **values_from_args(args, TrainConfig)}, source="the settings")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="geofm", description="Train and run segmentation models on your rasters.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="do an image and its labels line up?")
    c.add_argument("--image", required=True)
    c.add_argument("--labels", required=True)
    c.add_argument("--tile", type=int, default=256, help="tile size the overlap must hold (pixels)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--align-to", metavar="OUT.tif", help="when labels need aligning, write them aligned here")
    c.set_defaults(run=_check)

    t = sub.add_parser("train", help="train a model package")
    t.add_argument("--config", help="JSON file of TrainConfig settings (flags override it)")
    add_setting_flags(t, TrainConfig)
    t.set_defaults(run=_train)

    e = sub.add_parser("evaluate", help="score a model package against reference labels")
    e.add_argument("--model", required=True)
    e.add_argument("--image", required=True)
    e.add_argument("--labels", required=True)
    e.add_argument("--label-field")
    e.add_argument("--align-labels", action="store_true")
    e.add_argument("--out", help="write the metrics JSON here")
    add_setting_flags(e, PredictConfig, skip=("probabilities", "confidence", "bbox", "bbox_crs"))
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=_evaluate)

    i = sub.add_parser("info", help="what a model package holds")
    i.add_argument("--model", required=True)
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=_info)

    r = sub.add_parser("predict", help="predict a raster of any size")
    r.add_argument("--model", required=True)
    r.add_argument("--image", required=True)
    r.add_argument("--out", required=True, help="class-map GeoTIFF to write")
    add_setting_flags(r, PredictConfig)
    r.set_defaults(run=_predict)
    return p


if __name__ == "__main__":
    sys.exit(main())
