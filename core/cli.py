"""``geofm`` on the command line: check, train, pretrain, evaluate, info, predict and export. Errors print without a traceback."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .cli_settings import add_setting_flags, values_from_args
from .config import PredictConfig, PretrainConfig, TrainConfig
from .errors import ConfigError, GeoFMError, GeoFMWarning
from .events import (
    CancelledEvent,
    EpochEvent,
    Event,
    EventHandler,
    FinishedEvent,
    ProgressEvent,
    StartEvent,
    StepEvent,
    WarningEvent,
)

EXIT_UNUSABLE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geofm`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("always", GeoFMWarning)
    warnings.filterwarnings("ignore", module=r"torch\.onnx")  # the exporter's notes on its own deprecation
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
        if report.verdict == ALIGN_LABELS and not args.align_to:
            print("On the command line: add --align-to OUT.tif to write aligned labels, or train with --align-labels.")
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
    main_process = is_main_process()
    result = drive(train(config), quiet=not main_process, show_warnings=main_process)
    if result and main_process:
        print(_trained_line(result))
    return 0


def _trained_line(result: FinishedEvent) -> str:
    """What a finished training run says last: which epoch was kept, where, and how to use it."""
    best, run = result.summary.get("best_epoch"), result.summary.get("epochs_run")
    kept = f"epoch {best} of {run}" if best and best != run else f"the last epoch, {run}"
    miou = (result.summary.get("metrics") or {}).get("mean_iou")
    score = f", validation mIoU {miou:.3f}" if miou is not None else ""
    return (f"Model written to {result.path} ({kept}{score}); predict with: geofm predict --model {result.path} "
            "--image … --out …")


@_gdal_said
def _pretrain(args: argparse.Namespace) -> int:
    from .distributed import is_main_process
    from .pretrain import pretrain

    config = PretrainConfig.from_dict(values_from_args(args, PretrainConfig), source="the command line")
    main_process = is_main_process()
    result = drive(pretrain(config), quiet=not main_process, show_warnings=main_process)
    if result and main_process:
        print(f"Backbone written to {result.path}; fine-tune from it with: geofm train --weights {result.path} …")
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
    result = drive(evaluate(args.model, args.image, args.labels, args.label_field, out, cfg, args.align_labels,
                            ignore_values=args.ignore_values, background=args.background), quiet=args.json)
    metrics = result.summary if result else {}
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print_metrics(metrics)
    return 0


@_gdal_said
def _info(args: argparse.Namespace) -> int:
    from .onnx_model import is_onnx, read_geofm_metadata

    if is_onnx(args.model):  # the metadata it was exported with; neither torch nor onnxruntime needed
        meta = read_geofm_metadata(args.model)
    else:
        from .package import BACKBONE, read_package_metadata

        meta = read_package_metadata(args.model)
        if meta.get("kind") != BACKBONE:
            from .package import load_package

            meta = load_package(args.model).metadata
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    if meta.get("kind") == "backbone":
        _print_backbone(args.model, meta)
        return 0
    arch = meta["architecture"]
    print(f"{'ONNX model (exported by geofm)' if is_onnx(args.model) else 'Model package'} {args.model}")
    print(f"  {arch['backbone']} + {arch['decoder']} decoder, {meta['bands']['count']} band(s), "
          f"tile {meta['tile_size']} px, normalisation {meta['normalisation']['mode']}")
    if meta.get("resolution"):
        print(f"  trained at {meta['resolution'][0]:g} × {meta['resolution'][1]:g} map units per pixel")
    print("  classes: " + ", ".join(f"{c['value']} {c['name']} ({c['colour']})" for c in meta["classes"]))
    print_metrics(meta.get("metrics") or {})
    return 0


def _print_backbone(path: str, meta: dict[str, Any]) -> None:
    from .pretrained_files import image_part

    bands = meta["bands"]
    names = f" ({', '.join(bands['names'])})" if bands.get("names") else ""
    print(f"Pretrained backbone (not a segmentation model) {path}")
    print(f"  {meta['backbone']}, {bands['count']} band(s){names}, normalisation {meta['normalisation']['mode']}")
    trained = meta.get("trained_on") or {}
    files = ", ".join(f"{f['name']} ({image_part(f)})" for f in trained.get("files", []))
    print(f"  {trained.get('method', 'unknown method')}, {trained.get('steps', '?')} steps of "
          f"{trained.get('batch_size', '?')} crops of {trained.get('crop_size', '?')} px on: {files or 'unknown'}")
    print(f"  licence: {meta.get('licence') or 'not given'}")
    print(f"  fine-tune from it: geofm train --weights {path} --backbone {meta['backbone']} …")


@_gdal_said
def _predict(args: argparse.Namespace) -> int:
    from .fileio import check_outputs
    from .onnx_model import is_onnx
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
    model = args.model
    if args.runtime == "torch" and is_onnx(model):
        raise ConfigError("an .onnx model runs with onnxruntime, not torch", path=model,
                          fix="leave out --runtime torch, or give the .geofm package instead")
    with tempfile.TemporaryDirectory(prefix="geofm-onnx-") as folder:
        if args.runtime == "onnx" and not is_onnx(model):
            from .onnx_export import export_onnx

            print("Exporting the package to a temporary ONNX model…", file=sys.stderr)
            model = str(export_onnx(model, Path(folder) / f"{Path(model).stem}.onnx"))
        result = drive(predict(model, args.image, args.out, cfg))
    if result:
        print(f"Prediction written to {result.path or args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx

    out = export_onnx(args.model, args.out, opset=args.opset, nodata=args.nodata, dynamic_size=args.dynamic_size)
    print(f"ONNX model written to {out} ({out.stat().st_size / 2**20:.1f} MiB, opset {args.opset})")
    return 0


# -- helpers ---------------------------------------------------------------------------------------------------------
def drive(events: Iterable[Event], quiet: bool = False, show_warnings: bool = True) -> FinishedEvent | None:
    """Consume a job's events with progress bars; return its FinishedEvent (None when cancelled).

    ``quiet`` prints no progress and no lines on stdout; warnings still go to stderr as they come, unless
    ``show_warnings`` is False (a torchrun process other than rank 0: rank 0 says it once)."""
    printer = _Printer(quiet, show_warnings)
    try:
        for event in events:
            printer.handle(event)
            if printer.done:
                break
    finally:
        printer.close_bar()
    return printer.finished


class _Printer(EventHandler):
    """The CLI front: one line per epoch on stdout, tqdm bars and warnings on stderr."""

    def __init__(self, quiet: bool = False, show_warnings: bool = True) -> None:
        self.quiet, self.show_warnings = quiet, show_warnings
        self.bar: tqdm | None = None
        self.bar_phase: str | None = None  # the ProgressEvent phase the bar counts ('' for a job's main work)
        self.finished: FinishedEvent | None = None
        self.done = False

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.bar_phase = None, None

    def on_StartEvent(self, event: StartEvent) -> None:  # noqa: N802
        if self.quiet:
            return
        self.close_bar()
        checked = f"validating on {event.val_tiles}" if event.val_tiles else "no validation: the last epoch is kept"
        print(f"Training on {event.train_tiles} tiles, {checked} ({event.device}).")
        if event.message:
            print(event.message)

    def on_StepEvent(self, event: StepEvent) -> None:  # noqa: N802
        if self.quiet:
            return
        if self.bar is None or event.step == 1:
            self.close_bar()
            self.bar = tqdm(desc=f"epoch {event.epoch}", unit="step", leave=False, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{event.loss:.3f}", tiles_s=f"{event.tiles_per_s:.1f}")

    def on_EpochEvent(self, event: EpochEvent) -> None:  # noqa: N802
        if self.quiet:
            return
        self.close_bar()
        miou = event.metrics.get("mean_iou")
        val = f", validation loss {event.val_loss:.4f}" if event.val_loss is not None else ""
        score = f", mIoU {miou:.3f}" if miou is not None else ""
        print(f"epoch {event.epoch}: train loss {event.train_loss:.4f}{val}{score} ({event.seconds:.0f} s)")

    def on_ProgressEvent(self, event: ProgressEvent) -> None:  # noqa: N802
        if self.quiet:
            return
        if self.bar is None or self.bar_phase != event.phase:
            self.close_bar()
            if event.phase:  # a step of data preparation: a bar that goes once the step is done
                self.bar = tqdm(total=event.total or None, desc=event.phase, leave=False, file=sys.stderr)
            else:
                self.bar = tqdm(total=event.total, desc=event.message or "windows", unit="win", file=sys.stderr)
            self.bar_phase = event.phase
        if event.total and self.bar.total != event.total:  # a preparation step knows its total after a first pass
            self.bar.total = event.total
        self.bar.n = event.done
        self.bar.refresh()

    def on_WarningEvent(self, event: WarningEvent) -> None:  # noqa: N802
        if not self.show_warnings:
            return
        if self.bar is not None:
            self.bar.clear()  # the line would otherwise land in the middle of a bar
        print(f"Warning: {event.message}", file=sys.stderr)
        if self.bar is not None:
            self.bar.refresh()

    def on_CancelledEvent(self, event: CancelledEvent) -> None:  # noqa: N802
        if not self.quiet:
            print(event.message)
        self.done = True

    def on_FinishedEvent(self, event: FinishedEvent) -> None:  # noqa: N802
        self.finished, self.done = event, True


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

    pt = sub.add_parser("pretrain", help="pretrain a backbone on unlabelled rasters (self-supervised)")
    add_setting_flags(pt, PretrainConfig)
    pt.set_defaults(run=_pretrain)

    e = sub.add_parser("evaluate", help="score a model package against reference labels")
    e.add_argument("--model", required=True)
    e.add_argument("--image", required=True)
    e.add_argument("--labels", required=True)
    e.add_argument("--label-field")
    e.add_argument("--align-labels", action="store_true")
    e.add_argument("--ignore-values", type=float, nargs="*", metavar="VALUE",
                   help="label values that mean 'not labelled' (default: those the model was trained with; "
                        "give the flag alone for none)")
    e.add_argument("--background", action=argparse.BooleanOptionalAction, default=None,
                   help="vector labels: pixels outside every polygon are the background class (default: as trained)")
    e.add_argument("--out", help="write the metrics JSON here")
    add_setting_flags(e, PredictConfig, skip=("probabilities", "confidence", "bbox", "bbox_crs"))
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=_evaluate)

    i = sub.add_parser("info", help="what a model package (or a geofm-exported .onnx) holds")
    i.add_argument("--model", required=True)
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=_info)

    r = sub.add_parser("predict", help="predict a raster of any size")
    r.add_argument("--model", required=True)
    r.add_argument("--image", required=True)
    r.add_argument("--out", required=True, help="class-map GeoTIFF to write")
    add_setting_flags(r, PredictConfig)
    r.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto: torch for a .geofm, onnxruntime for a .onnx; onnx: export a .geofm to a temporary "
                        ".onnx first and run that")
    r.set_defaults(run=_predict)

    x = sub.add_parser("export", help="export a model package to ONNX (for prediction without torch, or Deepness)")
    x.add_argument("--model", required=True, help="the .geofm model package")
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (17 loads in onnxruntime 1.12 and later)")
    x.add_argument("--nodata", type=float, help="a raw value the graph treats as nodata, like NaN (for tools that "
                                                "feed raw values, e.g. Deepness)")
    x.add_argument("--dynamic-size", action="store_true",
                   help="symbolic height and width instead of the tile size (Deepness cannot load that)")
    x.set_defaults(run=_export)
    return p


if __name__ == "__main__":
    sys.exit(main())
