"""`make gpu-check`: 50 mixed-precision training steps of ResNet50 + FPN at 256², batch 16, on a GPU.

Reports tiles/s, peak GPU memory and the share of step time spent waiting on data (tiles read from a
generated GeoTIFF through geofm's own dataset and DataLoader). Without a GPU it says so and exits 0.
Results go to benchmarks/results/gpu.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from geofm.core.classes import ClassMap  # noqa: E402
from geofm.core.dataset import SegmentationDataset, build_scenes, index_tiles, stats_samples  # noqa: E402
from geofm.core.device import amp_dtype, default_workers  # noqa: E402
from geofm.core.model import build_model  # noqa: E402
from geofm.core.normalise import compute_stats  # noqa: E402

from rasters import write_raster  # noqa: E402

STEPS, WARMUP, BATCH, TILE, BANDS, CLASSES = 50, 5, 16, 256, 4, 6


def main() -> str:
    if not torch.cuda.is_available():
        text = "## GPU check (`make gpu-check`)\n\nNo CUDA GPU on this machine: the GPU path was not measured here.\n"
        print(text)
        return text
    device = torch.device("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        img = write_raster(Path(tmp) / "img.tif", rng.integers(0, 4000, (BANDS, 2048, 2048), dtype=np.uint16))
        lbl = write_raster(Path(tmp) / "lbl.tif", rng.integers(1, CLASSES + 1, (2048, 2048), dtype=np.uint8))
        classes = ClassMap.from_list([{"value": v} for v in range(1, CLASSES + 1)])
        scenes, _ = build_scenes([(img, lbl)], class_map=classes)
        items = index_tiles(scenes, TILE, TILE // 2)
        stats = compute_stats(stats_samples(scenes, items[:8]))
        loader = DataLoader(SegmentationDataset(scenes, items, stats), batch_size=BATCH, shuffle=True,
                            num_workers=default_workers(device), pin_memory=True, drop_last=True,
                            persistent_workers=True)
        model = build_model("resnet50", "fpn", BANDS, CLASSES).to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3)
        dtype = amp_dtype(device)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-1)
        torch.backends.cudnn.benchmark = True
        wait = compute = 0.0
        done = 0
        batches = iter(loader)
        while done < STEPS + WARMUP:
            t0 = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            x = x.to(device, non_blocking=True).to(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            with torch.autocast("cuda", dtype=dtype):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            done += 1
            if done == WARMUP:
                torch.cuda.reset_peak_memory_stats()
            elif done > WARMUP:
                wait, compute = wait + t1 - t0, compute + t2 - t1
    total = wait + compute
    text = "\n".join([
        "## GPU check (`make gpu-check`)", "",
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}, autocast {dtype}: ResNet50 + FPN, "
        f"{BANDS} bands, {TILE}² tiles, batch {BATCH}, {STEPS} steps after {WARMUP} warm-up.", "",
        "| tiles/s | peak GPU memory | share of step time waiting on data |", "|---|---|---|",
        f"| {STEPS * BATCH / total:.0f} | {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB | {wait / total:.1%} |",
        "",
    ])
    (REPO / "benchmarks" / "results" / "gpu.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
