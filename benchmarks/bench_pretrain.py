"""`make bench-pretrain`: does pretraining a backbone on the scene itself (``geofm pretrain``) help segmentation?

Scenes, split and scoring are bench_quality's (imported: :data:`SCENES`, :func:`load_scene`, :func:`split_scene`,
:func:`write_training_labels`, :func:`run_geofm`, :func:`score`): the same test blocks, never trained on.

Per scene and seed (0, 1, 2 by default):
1. pretrain a backbone on the scene's **whole image** (unlabelled; the test area's pixels are input, never its
   labels) with ``PretrainConfig(images=[image], minutes=PRETRAIN_MINUTES, seed=seed)`` and the shipped defaults;
2. fine-tune from it with the shipped training defaults (``TrainConfig(images, labels, output, seed,
   weights=backbone.geofm)``: the backbone's first conv and normalisation statistics);
3. train from scratch with the shipped defaults and ``weights=none`` (the same model, random weights);
4. label efficiency: 2 and 3 again with 25 % of the training labels (whole cells of the training area, drawn with
   the seed, until a quarter of the training pixels is kept; the test blocks are unchanged).
Scores on the test pixels: mIoU (mean ± sd over seeds), Δ pretrained − scratch.

Timing: pretraining a 1000 × 1000 px scene on 2 CPU cores (torch threads = 2): data preparation, seconds per
step (timed) and per epoch of the default steps, and how many epochs the default budget buys.

Short runs for smoke tests only: ``--scenes para --seeds 0 --pretrain-minutes 0.2 --epochs 1 --max-minutes 1``
(marked in the report). ``make bench-pretrain`` uses no override; on 2 CPU cores it takes hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_quality import (  # noqa: E402 - the benchmark's own folder goes on the path first
    DATA,
    SCENES,
    Split,
    describe_split,
    load_scene,
    run_geofm,
    split_scene,
    summarise,
    write_training_labels,
)

#: Pretraining budget per scene and seed (minutes), the share of training labels for label efficiency, and the
#: side of the synthetic scene whose pretraining is timed.
PRETRAIN_MINUTES = 20.0
LABEL_SHARE = 0.25
TIMING_SIDE = 1000
TIMING_THREADS = 2


def fewer_labels(split: Split, share: float, seed: int) -> Split:
    """``split`` with only ``share`` of its training pixels: whole cells (half a block) drawn with ``seed`` until
    the share is reached; the test pixels are unchanged."""
    cell = max(8, split.block // 2)
    h, w = split.train.shape
    cells = [(r, c) for r in range(0, h, cell) for c in range(0, w, cell) if split.train[r:r + cell, c:c + cell].any()]
    order = np.random.default_rng(seed).permutation(len(cells))
    target, kept = share * split.train.sum(), np.zeros_like(split.train)
    for i in order:
        if kept.sum() >= target:
            break
        r, c = cells[i]
        kept[r:r + cell, c:c + cell] = split.train[r:r + cell, c:c + cell]
    return dataclasses.replace(split, train=kept)


def run_pretrain(image: Path, seed: int, minutes: float, out: Path, epochs: int | None = None,
                 method: str | None = None) -> dict[str, Any]:
    """Pretrain on ``image`` for ``minutes`` (the shipped way: whole epochs that fit), or for ``epochs`` when given;
    with the shipped method unless ``method`` names another."""
    from geofm.core.config import PretrainConfig
    from geofm.core.events import EpochEvent
    from geofm.core.pretrain import pretrain

    budget = {"epochs": epochs} if epochs else {"minutes": minutes}
    config = PretrainConfig(images=[str(image)], seed=seed, output=str(out), **budget,
                            **({"method": method} if method else {}))
    started, epochs = time.perf_counter(), 0
    try:
        for event in pretrain(config):
            if isinstance(event, EpochEvent):
                epochs += 1
                print(f"      pretrain epoch {event.epoch}: loss {event.train_loss:.3f} ({event.seconds:.0f} s)",
                      flush=True)
    except Exception as err:  # noqa: BLE001 - a failing run is a result to report
        return {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
    return {"seconds": time.perf_counter() - started, "epochs": epochs, "path": str(out)}


def time_pretraining(folder: Path, side: int = TIMING_SIDE, steps: int | None = None) -> dict[str, Any]:
    """Pretraining a synthetic ``side`` × ``side`` px, 4-band uint16 scene on :data:`TIMING_THREADS` threads:
    preparation, one timed epoch (``steps`` steps; default: the shipped steps per epoch), the budget's epochs."""
    import rasterio
    import torch
    from rasterio.transform import from_origin

    from geofm.core.config import PretrainConfig
    from geofm.core.events import EpochEvent, StartEvent
    from geofm.core.pretrain import estimate_seconds_per_step, pretrain

    torch.set_num_threads(TIMING_THREADS)
    path = folder / "timing.tif"
    rng = np.random.default_rng(0)
    data = rng.normal(1500, 300, (4, side, side)).clip(1, None).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=4, dtype="uint16", crs="EPSG:32633",
                       transform=from_origin(500_000, 6_000_000, 10, 10), nodata=0, tiled=True) as dst:
        dst.write(data)
    config = PretrainConfig(images=[str(path)], epochs=1, output=str(folder / "timing.geofm"), device="cpu",
                            **({"steps_per_epoch": steps} if steps else {}))
    step = estimate_seconds_per_step(config)
    started = time.perf_counter()
    prepared = epoch = None
    for event in pretrain(config):
        if isinstance(event, StartEvent):
            prepared = time.perf_counter() - started
        if isinstance(event, EpochEvent):
            epoch = event.seconds
    budget_epochs = int(PRETRAIN_MINUTES * 60 // max(epoch, 1e-9))
    return {"side": side, "threads": TIMING_THREADS, "prepare_seconds": prepared, "seconds_per_step": step,
            "steps_per_epoch": config.steps_per_epoch, "batch_size": config.batch_size, "crop": config.crop_size,
            "epoch_seconds": epoch, "budget_minutes": PRETRAIN_MINUTES, "budget_epochs": budget_epochs}


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    smoke = {k: v for k, v in s.items() if k in ("epochs", "max_minutes", "timing_steps") and v}
    if s["pretrain_minutes"] != PRETRAIN_MINUTES and not s.get("pretrain_epochs"):
        smoke["pretrain_minutes"] = s["pretrain_minutes"]
    n = s.get("pretrain_epochs")
    length = (f"{n} epoch{'s' if n != 1 else ''} of the shipped steps" if n
              else f"{s['pretrain_minutes']:g} min")
    lines = ["## Pretraining on the scene itself (`benchmarks/bench_pretrain.py`)", "",
             f"Run {results['date']} on {results['machine']}; seeds {', '.join(map(str, s['seeds']))}. Scenes and "
             f"test blocks as bench_quality. Pretrained: {_method_label(s.get('method', 'simsiam'))} on the whole "
             "image for "
             f"{length}, then the shipped training defaults from the backbone; scratch: the "
             f"shipped defaults with weights=none. {LABEL_SHARE:.0%} labels: whole cells of the training area.", ""]
    if smoke:
        lines += [f"**Smoke run with non-default overrides ({', '.join(f'{k}={v}' for k, v in smoke.items())}): these "
                  "numbers do not measure the defaults.**", ""]
    lines += ["| scene | labels | pretrained mIoU | scratch mIoU | Δ mIoU (points) | pretraining min |",
              "|---|---|---|---|---|---|"]
    for name, sc in results["scenes"].items():
        if "skipped" in sc:
            lines.append(f"| {name} | skipped: {sc['skipped']} | | | | |")
            continue
        pre_min = [r["seconds"] / 60 for r in sc["pretrain"] if "seconds" in r]
        for labels in ("all", "25%"):
            a, b = summarise(sc[f"pretrained_{labels}"]), summarise(sc[f"scratch_{labels}"])
            delta = (f"{(np.mean(a['miou']) - np.mean(b['miou'])) * 100:+.1f}" if a["ok"] and b["ok"] else "")
            show = lambda x: _mean_sd(x["miou"]) if x["ok"] else f"fails: {x['error'][:100]}"  # noqa: E731
            lines.append(f"| {name} | {labels} | {show(a)} | {show(b)} | {delta} | "
                         f"{np.mean(pre_min) if pre_min else float('nan'):.1f} |")
    t = results.get("timing")
    if t:
        lines += ["", f"Pretraining a {t['side']} × {t['side']} px 4-band scene on {t['threads']} CPU threads: "
                      f"preparation {t['prepare_seconds']:.1f} s, {t['seconds_per_step']:.2f} s per step (batch "
                      f"{t['batch_size']} crops of {t['crop']} px), {t['epoch_seconds']:.0f} s per epoch of "
                      f"{t['steps_per_epoch']} steps: {t['budget_minutes']:g} min buy about {t['budget_epochs']} "
                      "epochs."]
    lines.append("")
    return "\n".join(lines)


def _method_label(name: str) -> str:
    from geofm.core.registries import PRETRAIN_METHODS

    return PRETRAIN_METHODS.get(name).label


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if values else "–"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--scenes", nargs="+", choices=[s.name for s in SCENES])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--pretrain-minutes", type=float, default=PRETRAIN_MINUTES)
    p.add_argument("--pretrain-epochs", type=int,
                   help="pretrain for this many epochs instead of the time budget: the same pretraining on any machine "
                        "(a GPU run comparable with a CPU one; the budget buys 51-65 epochs on 2 CPU cores)")
    p.add_argument("--method", help="a pretraining method other than the shipped one (a comparison)")
    p.add_argument("--epochs", type=int, help="SMOKE TESTS ONLY: override the fine-tuning epochs")
    p.add_argument("--max-minutes", type=float, help="SMOKE TESTS ONLY: stop each fine-tuning after this long")
    p.add_argument("--timing-side", type=int, default=TIMING_SIDE, help="side of the timed scene (px)")
    p.add_argument("--timing-steps", type=int, help="SMOKE TESTS ONLY: steps of the timed epoch")
    p.add_argument("--no-timing", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    from geofm.core.config import PretrainConfig

    args = arguments(argv)
    train = {"epochs": args.epochs} if args.epochs else {}
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "settings": {"seeds": args.seeds, "method": args.method or PretrainConfig().method,
                     "pretrain_minutes": args.pretrain_minutes,
                     "pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs,
                     "max_minutes": args.max_minutes, "timing_steps": args.timing_steps,
                     "label_share": LABEL_SHARE},
        "scenes": {},
    }
    for spec in [s for s in SCENES if not args.scenes or s.name in args.scenes]:
        folder = args.data / spec.folder
        missing = [p for p in (folder / spec.image, folder / spec.labels) if not p.exists()]
        if missing:
            results["scenes"][spec.name] = {"skipped": f"absent: {', '.join(str(p) for p in missing)}"}
            continue
        scene = load_scene(spec, args.data)
        split = split_scene(scene)
        print(describe_split(scene, split), flush=True)
        entry: dict[str, Any] = {"pretrain": [], **{f"{m}_{n}": [] for m in ("pretrained", "scratch")
                                                     for n in ("all", "25%")}}
        results["scenes"][spec.name] = entry
        with tempfile.TemporaryDirectory(prefix=f"bench-pretrain-{spec.name}-") as tmp:
            for seed in args.seeds:
                print(f"  seed {seed}: pretraining {args.pretrain_epochs or args.pretrain_minutes:g} "
                      f"{'epochs' if args.pretrain_epochs else 'min'}", flush=True)
                backbone = Path(tmp) / f"backbone_seed{seed}.geofm"
                pre = run_pretrain(scene.image, seed, args.pretrain_minutes, backbone, args.pretrain_epochs,
                                   args.method)
                entry["pretrain"].append({"seed": seed, **pre})
                for labels, sp in (("all", split), ("25%", fewer_labels(split, LABEL_SHARE, seed))):
                    for method, weights in (("pretrained", str(backbone)), ("scratch", "none")):
                        run_dir = Path(tmp) / f"{method}_{labels.strip('%')}_seed{seed}"
                        run_dir.mkdir()
                        write_training_labels(scene, sp, run_dir / "train_labels.tif")
                        if method == "pretrained" and "error" in pre:
                            entry[f"{method}_{labels}"].append({"seed": seed, "error": "pretraining: " + pre["error"]})
                            continue
                        print(f"  seed {seed}: {method}, {labels} labels", flush=True)
                        r = run_geofm(scene, sp, seed, {**train, "weights": weights}, args.max_minutes, run_dir)
                        entry[f"{method}_{labels}"].append({"seed": seed, **r})
                        print("    " + (f"fails: {r['error']}" if "error" in r else f"mIoU {r['miou']:.3f}"),
                              flush=True)
    if not args.no_timing:
        with tempfile.TemporaryDirectory(prefix="bench-pretrain-timing-") as tmp:
            results["timing"] = time_pretraining(Path(tmp), args.timing_side, args.timing_steps)
    from geofm.core.fileio import write_json

    text = report(results)
    write_json(HERE / "results" / "pretrain.json", results)
    (HERE / "results" / "pretrain.md").write_text(text)
    import run_all

    run_all.gather()
    print(text)
    return text


if __name__ == "__main__":
    main()
    sys.exit(0)
