"""`make bench-pretrain`: does pretraining a backbone on the scene itself (``geofm pretrain``) help segmentation?

Scenes, split and scoring are bench_quality's (imported: :data:`SCENES`, :func:`load_scene`, :func:`split_scene`,
:func:`write_training_labels`, :func:`run_geofm`): the same test blocks, never trained on.

Per scene and seed (0, 1, 2 by default):
1. pretrain a backbone on the scene's **whole image** (unlabelled; the test area's pixels are input, never its
   labels) with the shipped defaults for :data:`PRETRAIN_EPOCHS` epochs (about 15 minutes on 2 CPU cores);
   entries that share an image (NC dense, polygons and points) share its backbone;
2. fine-tune from it with the shipped training defaults (``weights=backbone.geofm``), and again with the decoder
   started from the pretrained one too (``pretrained_decoder=True``; masked reconstruction trains an FPN decoder),
   and with the backbone at a tenth of the learning rate (``backbone_lr=0.1``: keeps more of what it learnt);
3. train from scratch with the shipped defaults and ``weights=none`` (the same model, random weights);
4. label efficiency: 2 and 3 again with 25 % of the training labels (whole cells of the training area, drawn with
   the seed, until a quarter of the training pixels is kept; the test blocks are unchanged);
5. for a sensor with several scenes (:data:`SENSOR_GROUPS`), a backbone pretrained on all of them, fine-tuned on each.

Every step is a *unit* whose result is a JSON file in ``results/pretrain_runs/`` (its backbone in ``--cache``): a run
that stops (or is stopped) goes on where it was when started again, and ``--workers 2`` runs units side by side
(one thread each). Pretraining runs a fixed number of epochs, not a time budget, so a busy machine changes how long
it takes, never what is learnt. The report (``results/pretrain.md``) shows every unit done so far and says how many
seeds each row has.

Timing: pretraining a 1000 × 1000 px scene on 2 CPU cores (torch threads = 2): data preparation, seconds per
step and per epoch, and the minutes :data:`PRETRAIN_EPOCHS` epochs take.

Short runs for smoke tests only: ``--scenes para --seeds 0 --pretrain-epochs 1 --epochs 1 --store /tmp/x``
(marked in the report).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
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
    SceneSpec,
    Split,
    describe_split,
    load_scene,
    run_geofm,
    split_scene,
    summarise,
    write_training_labels,
)

#: Pretraining length (epochs of the shipped 50 steps: about 15 minutes on 2 CPU cores, the goal's budget for a
#: 1000 × 1000 px scene), the share of training labels for label efficiency, the side of the timed scene.
PRETRAIN_EPOCHS = 45
LABEL_SHARE = 0.25
TIMING_SIDE = 1000
TIMING_THREADS = 2
#: Scenes of one sensor with the same bands, pretrained on together as well as alone. (Zion's and Peru's Landsat-8
#: differ: 4 bands of DN against 6 of surface reflectance.)
SENSOR_GROUPS = {"sentinel2": ("aberystwyth", "brandenburg")}
ARM_LABELS = {"pretrained": "Pretrained (backbone)", "pretrained_decoder": "Pretrained (backbone and decoder)",
              "pretrained_gentle": "Pretrained (backbone at a tenth of the learning rate)",
              "pretrained_sensor": "Pretrained on the sensor's scenes"}
STORE = HERE / "results" / "pretrain_runs"
CACHE = Path.home() / ".cache" / "geofm-bench-pretrain"
#: How a fine-tuning starts: its TrainConfig settings.
ARMS = {"scratch": {"weights": "none"}, "pretrained": {}, "pretrained_decoder": {"pretrained_decoder": True},
        "pretrained_gentle": {"backbone_lr": 0.1}, "pretrained_sensor": {}}
#: The arms fine-tuned on every scene from its own pretraining (the sensor arm starts from the sensor's).
SCENE_ARMS = ("scratch", "pretrained", "pretrained_decoder", "pretrained_gentle")


@dataclasses.dataclass(frozen=True)
class Unit:
    """One step of the benchmark: a pretraining (``scene`` None) or a fine-tuning/scratch run of one scene."""

    seed: int
    group: str  # the pretraining group: an image folder, or a SENSOR_GROUPS key
    scene: str | None = None
    labels: str | None = None  # 'all' | '25%'
    arm: str | None = None  # one of ARMS

    @property
    def key(self) -> str:
        if self.scene is None:
            return f"pretrain_{self.group}_seed{self.seed}"
        return f"{self.arm}_{self.scene}_{self.labels.strip('%')}_seed{self.seed}"

    @property
    def backbone(self) -> str | None:
        """The key of the pretraining this unit starts from, if any."""
        return None if self.arm in (None, "scratch") else f"pretrain_{self.group}_seed{self.seed}"


def plan_units(specs: list[SceneSpec], seeds: list[int]) -> list[Unit]:
    """Every unit in the order they are worth running: seed by seed, each pretraining followed by what uses it."""
    names = {s.name for s in specs}
    units: list[Unit] = []
    for seed in seeds:
        for folder in dict.fromkeys(s.folder for s in specs):
            units.append(Unit(seed, folder))
            for spec in (s for s in specs if s.folder == folder):
                units += [Unit(seed, folder, spec.name, labels, arm) for labels in ("all", "25%")
                          for arm in SCENE_ARMS]
    for seed in seeds:
        for group, members in SENSOR_GROUPS.items():
            if set(members) <= names:
                units.append(Unit(seed, group))
                units += [Unit(seed, group, m, labels, "pretrained_sensor") for m in members
                          for labels in ("all", "25%")]
    return units


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


def run_pretrain(images: list[Path], seed: int, epochs: int, out: Path, method: str | None = None,
                 **settings: Any) -> dict[str, Any]:
    """Pretrain on ``images`` for ``epochs`` epochs with the shipped settings (the shipped method unless ``method``
    names another; other PretrainConfig ``settings`` for tests); a run stopped part-way goes on from its checkpoint."""
    from geofm.core.checkpoint import checkpoint_path
    from geofm.core.config import PretrainConfig
    from geofm.core.events import EpochEvent
    from geofm.core.pretrain import pretrain

    config = PretrainConfig(images=[str(p) for p in images], seed=seed, output=str(out), epochs=epochs,
                            **({"method": method} if method else {}), **settings)
    resumed = Path(checkpoint_path(str(out))).is_file()
    if resumed:
        config = dataclasses.replace(config, resume=str(checkpoint_path(str(out))))
    started, done = time.perf_counter(), 0
    try:
        for event in pretrain(config):
            if isinstance(event, EpochEvent):
                done += 1
                print(f"      pretrain epoch {event.epoch}: loss {event.train_loss:.3f} ({event.seconds:.0f} s)",
                      flush=True)
    except Exception as err:  # noqa: BLE001 - a failing run is a result to report
        return {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
    return {"seconds": time.perf_counter() - started, "epochs": done, "path": str(out), "resumed": resumed}


# -- units: what is done, what may run next ---------------------------------------------------------------------------
class Store:
    """Unit results as ``<key>.json`` in ``folder``, backbones as ``<key>.geofm`` in ``cache``; a unit being run is
    claimed by a ``.claims/<key>`` file holding the worker's pid (a dead worker's claim is free again)."""

    def __init__(self, folder: Path, cache: Path, units: list[Unit]):
        self.folder, self.cache, self.units = folder, cache, units
        (folder / ".claims").mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)

    def result(self, unit: Unit) -> dict[str, Any] | None:
        path = self.folder / f"{unit.key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def backbone_path(self, key: str) -> Path:
        return self.cache / f"{key}.geofm"

    def done(self, unit: Unit) -> bool:
        if self.result(unit) is None:
            return False
        if unit.scene is not None or self.backbone_path(unit.key).exists():
            return True
        # a pretraining whose backbone was removed is done only if nothing still needs it
        return all(self.done(u) for u in self.units if u.backbone == unit.key)

    def claim(self, unit: Unit) -> bool:
        path = self.folder / ".claims" / unit.key
        for _ in range(2):
            try:
                with open(path, "x") as f:
                    f.write(str(os.getpid()))
                return True
            except FileExistsError:
                if _alive(int(path.read_text() or 0)):
                    return False
                path.unlink(missing_ok=True)
        return False

    def release(self, unit: Unit) -> None:
        (self.folder / ".claims" / unit.key).unlink(missing_ok=True)

    def save(self, unit: Unit, result: dict[str, Any]) -> None:
        from geofm.core.fileio import write_json

        write_json(self.folder / f"{unit.key}.json", {"unit": dataclasses.asdict(unit), **result})

    def next_unit(self) -> Unit | None | str:
        """The first unit that may run now; ``"wait"`` while the rest wait for a pretraining; None when all are
        done."""
        waiting = False
        for unit in self.units:
            if self.done(unit):
                continue
            if unit.backbone:
                base = next(u for u in self.units if u.key == unit.backbone)
                if not (self.result(base) and self.backbone_path(base.key).exists()
                        or "error" in (self.result(base) or {})):
                    waiting = True
                    continue
            if self.claim(unit):
                return unit
            waiting = True
        return "wait" if waiting else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return pid > 0


def run_units(store: Store, specs: dict[str, SceneSpec], data: Path, args: argparse.Namespace) -> None:
    """Run units until none is left (a worker: several may share ``store``)."""
    import torch

    scenes: dict[str, Any] = {}
    while (unit := store.next_unit()) is not None:
        if unit == "wait":
            time.sleep(20)
            continue
        try:
            print(f"== {unit.key} ({torch.get_num_threads()} threads)", flush=True)
            stamp = {"date": datetime.date.today().isoformat(), "threads": torch.get_num_threads(),
                     "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
            if unit.scene is None:
                members = SENSOR_GROUPS.get(unit.group) or [s for s in specs if specs[s].folder == unit.group][:1]
                images = [data / specs[m].folder / specs[m].image for m in members]
                result = run_pretrain(images, unit.seed, args.pretrain_epochs, store.backbone_path(unit.key),
                                      args.method)
            else:
                result = _fine_tune(unit, store, specs[unit.scene], data, args, scenes)
            store.save(unit, {**result, **stamp})
            print("    " + (f"fails: {result['error']}" if "error" in result else
                            f"mIoU {result['miou']:.3f}" if "miou" in result else
                            f"{result['epochs']} epochs in {result['seconds'] / 60:.1f} min"), flush=True)
        finally:
            store.release(unit)


def _fine_tune(unit: Unit, store: Store, spec: SceneSpec, data: Path, args: argparse.Namespace,
               scenes: dict[str, Any]) -> dict[str, Any]:
    if unit.backbone and "error" in store.result(next(u for u in store.units if u.key == unit.backbone)):
        return {"error": "pretraining failed"}
    if ARMS[unit.arm].get("pretrained_decoder"):
        from geofm.core.package import read_package_metadata

        if not read_package_metadata(store.backbone_path(unit.backbone)).get("decoder"):
            return {"error": "the backbone package carries no decoder (pretrained before packages kept it)"}
    if spec.name not in scenes:
        scene = load_scene(spec, data)
        scenes[spec.name] = (scene, split_scene(scene))
        print(describe_split(*scenes[spec.name]), flush=True)
    scene, split = scenes[spec.name]
    if unit.labels != "all":
        split = fewer_labels(split, LABEL_SHARE, unit.seed)
    weights = {"weights": str(store.backbone_path(unit.backbone))} if unit.backbone else {}
    overrides = {**weights, **ARMS[unit.arm], **({"epochs": args.epochs} if args.epochs else {})}
    with tempfile.TemporaryDirectory(prefix=f"bench-pretrain-{unit.key}-") as tmp:
        write_training_labels(scene, split, Path(tmp) / "train_labels.tif")
        result = run_geofm(scene, split, unit.seed, overrides, args.max_minutes, Path(tmp))
    result.pop("history", None)
    return result


def time_pretraining(folder: Path, side: int = TIMING_SIDE, steps: int | None = None,
                     epochs: int = PRETRAIN_EPOCHS) -> dict[str, Any]:
    """Pretraining a synthetic ``side`` × ``side`` px, 4-band uint16 scene on :data:`TIMING_THREADS` threads:
    preparation, one timed epoch (``steps`` steps; default: the shipped steps per epoch), and ``epochs`` of them."""
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
    return {"side": side, "threads": TIMING_THREADS, "prepare_seconds": prepared, "seconds_per_step": step,
            "steps_per_epoch": config.steps_per_epoch, "batch_size": config.batch_size, "crop": config.crop_size,
            "epoch_seconds": epoch, "epochs": epochs, "minutes": (prepared + epochs * epoch) / 60}


# -- the report -------------------------------------------------------------------------------------------------------
def report(store: Store, settings: dict[str, Any], timing: dict[str, Any] | None) -> str:
    results = {u.key: store.result(u) for u in store.units}
    done = [r for r in results.values() if r]
    dates = sorted({r["date"] for r in done})
    when = f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "(none yet)")
    lines = ["## Pretraining on the scene itself (`benchmarks/bench_pretrain.py`)", "",
             f"Units run {when} on {_devices(done)}; "
             f"seeds {', '.join(map(str, settings['seeds']))}. Scenes and test blocks as bench_quality. Pretrained: "
             f"{_method_label(settings['method'])} on the whole image for {settings['pretrain_epochs']} epochs of "
             "the shipped steps, then the shipped training defaults from the backbone; scratch: the shipped defaults "
             f"with weights=none. {LABEL_SHARE:.0%} labels: whole cells of the training area, drawn with the seed. "
             "Δ: pretrained − scratch, paired by seed. Raw results: `results/pretrain_runs/`.", ""]
    smoke = {k: settings[k] for k in ("epochs", "max_minutes", "timing_steps") if settings.get(k)}
    if settings["pretrain_epochs"] != PRETRAIN_EPOCHS:
        smoke["pretrain_epochs"] = settings["pretrain_epochs"]
    if smoke:
        lines += [f"**Smoke run with non-default overrides ({', '.join(f'{k}={v}' for k, v in smoke.items())}): these "
                  "numbers do not measure the defaults.**", ""]
    if len(done) < len(results):
        lines += [f"**Incomplete: {len(done)} of {len(results)} units done**; the seeds column says what each row "
                  "rests on.", ""]
    lines += ["| scene | labels | seeds | pretrained mIoU | scratch mIoU | Δ mIoU (points) | reaches scratch with all "
              "labels |", "|---|---|---|---|---|---|---|"]
    gains: dict[str, list[float]] = {}
    efficient: dict[str, list[bool]] = {}
    for scene in dict.fromkeys(u.scene for u in store.units if u.scene):
        for arm in (a for a in ARMS if a != "scratch"):
            for labels in ("all", "25%"):
                row = _row(store, results, scene, labels, arm)
                if row is None:
                    continue
                lines.append(row["line"])
                if labels == "all" and row["delta"] is not None:
                    gains.setdefault(arm, []).append(row["delta"])
                if labels == "25%" and row["reaches"] is not None:
                    efficient.setdefault(arm, []).append(row["reaches"])
    for arm, deltas in gains.items():
        reached = efficient.get(arm, [])
        lines += ["", f"{ARM_LABELS[arm]} − scratch with all labels, averaged over {len(deltas)} entries: "
                      f"**{np.mean(deltas) * 100:+.1f}** points (goal: +3.0). With {LABEL_SHARE:.0%} of the labels it "
                      f"reaches scratch with all of them on **{sum(reached)} of {len(reached)}** entries (goal: at "
                      "least half)."]
    minutes = {}
    for u in store.units:
        r = results[u.key]
        if u.scene is None and r and "seconds" in r:
            minutes.setdefault(u.group, []).append(_pretrain_minutes(r, settings["pretrain_epochs"]))
    if minutes:
        lines += ["", "Pretraining minutes per seed: " + "; ".join(f"{g} {', '.join(m)}" for g, m in minutes.items())
                  + " (a run resumed from its checkpoint timed only its last part: its whole is estimated from that "
                    "part's minutes per epoch)."]
    if timing:
        t = timing
        lines += ["", f"Pretraining a {t['side']} × {t['side']} px 4-band scene on {t['threads']} CPU threads: "
                      f"preparation {t['prepare_seconds']:.1f} s, {t['seconds_per_step']:.2f} s per step (batch "
                      f"{t['batch_size']} crops of {t['crop']} px), {t['epoch_seconds']:.0f} s per epoch of "
                      f"{t['steps_per_epoch']} steps: the benchmark's {t['epochs']} epochs take about "
                      f"**{t['minutes']:.1f} min** (goal: ≤ 15)."]
    lines.append("")
    return "\n".join(lines)


def _devices(done: list[dict[str, Any]]) -> str:
    """Where the units ran: CPU threads, or a GPU's name (a unit without the field ran on a CPU)."""
    cpu = sorted({r["threads"] for r in done if r.get("device", "cpu") == "cpu"})
    gpus = sorted({r["device"] for r in done if r.get("device", "cpu") != "cpu"})
    where = [f"{platform.machine()} CPU with {' or '.join(map(str, cpu))} torch thread(s)"] if cpu or not gpus else []
    return " and ".join(where + gpus)


def _row(store: Store, results: dict[str, Any], scene: str, labels: str, arm: str) -> dict[str, Any] | None:
    """One table row from the units of ``scene``: the arm against scratch with the same labels, paired by seed."""
    def runs(a: str, lab: str) -> dict[int, dict[str, Any]]:
        return {u.seed: results[u.key] for u in store.units
                if u.scene == scene and u.arm == a and u.labels == lab and results[u.key]}

    mine, base, full = runs(arm, labels), runs("scratch", labels), runs("scratch", "all")
    if not mine and arm != "pretrained":
        return None
    a, b = summarise(list(mine.values())), summarise(list(base.values()))
    paired = [mine[s]["miou"] - base[s]["miou"] for s in mine if s in base and "miou" in mine[s] and "miou" in base[s]]
    delta = float(np.mean(paired)) if paired else None
    reaches = None
    if labels != "all" and a["ok"]:
        target = [r["miou"] for r in full.values() if "miou" in r]
        reaches = bool(target) and bool(np.mean(a["miou"]) >= np.mean(target))
    label = {"pretrained": labels, "pretrained_decoder": f"{labels}, decoder too",
             "pretrained_gentle": f"{labels}, backbone at lr × 0.1",
             "pretrained_sensor": f"{labels}, backbone of {'+'.join(_group_of(scene))}"}[arm]
    seeds = ",".join(str(s) for s in sorted(mine)) or "–"
    line = (f"| {scene} | {label} | {seeds} | {_shown(a)} | {_shown(b)} | "
            f"{'' if delta is None else f'{delta * 100:+.1f}'} | {'' if reaches is None else ('yes' if reaches else 'no')} |")
    return {"line": line, "delta": delta, "reaches": reaches}


def _shown(s: dict[str, Any]) -> str:
    if s["ok"]:
        return _mean_sd(s["miou"])
    return f"fails: {s['error'][:80]}" if s["seeds"] else "–"


def _group_of(scene: str) -> tuple[str, ...]:
    return next((m for m in SENSOR_GROUPS.values() if scene in m), (scene,))


def _method_label(name: str) -> str:
    from geofm.core.registries import PRETRAIN_METHODS

    return PRETRAIN_METHODS.get(name).label


def _pretrain_minutes(result: dict[str, Any], epochs: int) -> str:
    """A pretraining unit's minutes; for a resumed run, the whole run's at the resumed part's pace."""
    if not result.get("resumed"):
        return f"{result['seconds'] / 60:.1f} ({result['threads']} thr.)"
    whole = result["seconds"] / max(result["epochs"], 1) * epochs / 60
    return f"≈ {whole:.1f} ({result['threads']} thr.; resumed: {result['epochs']} epochs timed)"


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if values else "–"


# -- the command ------------------------------------------------------------------------------------------------------
def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--scenes", nargs="+", choices=[s.name for s in SCENES])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS,
                   help=f"epochs of pretraining (default {PRETRAIN_EPOCHS}: about 15 minutes on 2 CPU cores)")
    p.add_argument("--method", help="a pretraining method other than the shipped one (a comparison)")
    p.add_argument("--workers", type=int, default=1,
                   help="units run side by side, each with cores/workers torch threads (the results are the same "
                        "units; only the order and the wall time change)")
    p.add_argument("--store", type=Path, default=STORE, help="where unit results are kept (resumes from them)")
    p.add_argument("--cache", type=Path, default=CACHE, help="where backbones are kept until their units are done")
    p.add_argument("--report-only", action="store_true", help="write the report from the units done so far")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, help="SMOKE TESTS ONLY: override the fine-tuning epochs")
    p.add_argument("--max-minutes", type=float, help="SMOKE TESTS ONLY: stop each fine-tuning after this long")
    p.add_argument("--timing-side", type=int, default=TIMING_SIDE, help="side of the timed scene (px)")
    p.add_argument("--timing-steps", type=int, help="SMOKE TESTS ONLY: steps of the timed epoch")
    p.add_argument("--no-timing", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    from geofm.core.config import PretrainConfig

    args = arguments(argv)
    specs = [s for s in SCENES if not args.scenes or s.name in args.scenes]
    absent = {s.name for s in specs if not all((args.data / s.folder / f).exists() for f in (s.image, s.labels))}
    for name in sorted(absent):
        print(f"skipped {name}: its files are not in {args.data}", flush=True)
    specs = [s for s in specs if s.name not in absent]
    settings = {"seeds": args.seeds, "method": args.method or PretrainConfig().method,
                "pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs, "max_minutes": args.max_minutes,
                "timing_steps": args.timing_steps, "label_share": LABEL_SHARE}
    store = Store(args.store, args.cache, plan_units(specs, args.seeds))
    _check_settings(args.store, settings)
    if args.worker or (args.workers == 1 and not args.report_only):
        run_units(store, {s.name: s for s in specs}, args.data, args)
    elif not args.report_only:
        threads = str(max(1, (os.cpu_count() or 1) // args.workers))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        argv_worker = [a for a in (argv if argv is not None else sys.argv[1:])] + ["--worker"]
        workers = [subprocess.Popen([sys.executable, __file__, *argv_worker], env=env) for _ in range(args.workers)]
        for w in workers:
            w.wait()
    if args.worker:
        return ""
    timing_file = args.store / "timing.json"
    if not (args.no_timing or args.report_only):
        with tempfile.TemporaryDirectory(prefix="bench-pretrain-timing-") as tmp:
            timing = time_pretraining(Path(tmp), args.timing_side, args.timing_steps, args.pretrain_epochs)
        timing_file.write_text(json.dumps(timing, indent=1))
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else None
    text = report(store, settings, timing)
    if args.store.resolve() == STORE:
        (HERE / "results" / "pretrain.md").write_text(text)
        import run_all

        run_all.gather()
    else:  # a run of its own (a smoke test, a comparison) leaves RESULTS.md alone
        (args.store / "pretrain.md").write_text(text)
    print(text)
    return text


def _check_settings(store: Path, settings: dict[str, Any]) -> None:
    """A store holds the units of one set of settings (seeds and scenes may grow): mixing would mix measurements."""
    path = store / "settings.json"
    fixed = {k: v for k, v in settings.items() if k not in ("seeds", "timing_steps")}
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != fixed:
            sys.exit(f"{path} holds runs made with other settings ({stored}); pass --store with another folder or "
                     "remove that one")
    else:
        path.write_text(json.dumps(fixed, indent=1))


if __name__ == "__main__":
    main()
    sys.exit(0)
