"""`python benchmarks/bench_cost.py`: CPU seconds one training tile costs, per backbone and decoder (the table in
``core/cost.py``).

One training step (forward, cross-entropy, backward, AdamW) on random data of 5 bands at tile 128 px, batch 8, on
ONE torch thread, timed with the process's CPU time (``time.process_time``): a figure that stays true on a machine
busy with other work, where wall time would not. Data reading and validation are not in it (core/cost.py adds
them). Prints a Python dict to paste into core/cost.py.
"""

from __future__ import annotations

import platform
import sys
import time

sys.modules.setdefault("triton", None)

import torch  # noqa: E402

from geofm.core.model import build_model  # noqa: E402
from geofm.core.registries import BACKBONES, DECODERS  # noqa: E402

TILE, BATCH, BANDS, CLASSES, REPEATS = 128, 8, 5, 7, 2


def cpu_seconds_per_tile(backbone: str, decoder: str) -> float:
    torch.manual_seed(0)
    model = build_model(backbone, decoder, BANDS, CLASSES, weights="none").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.nn.CrossEntropyLoss(ignore_index=-1)
    x = torch.randn(BATCH, BANDS, TILE, TILE)
    y = torch.randint(0, CLASSES, (BATCH, TILE, TILE))
    times = []
    for _ in range(REPEATS + 1):  # the first step warms up (allocations, kernels)
        started = time.process_time()
        optimizer.zero_grad()
        loss(model(x), y).backward()
        optimizer.step()
        times.append(time.process_time() - started)
    return min(times[1:]) / BATCH


def main() -> None:
    torch.set_num_threads(1)
    print(f"# {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, tile {TILE}, "
          f"batch {BATCH}, 1 thread, CPU seconds per tile", flush=True)
    table = {}
    for backbone in BACKBONES.names():
        for decoder in DECODERS.names():
            table[(backbone, decoder)] = round(cpu_seconds_per_tile(backbone, decoder), 3)
            print(f"    {(backbone, decoder)!r}: {table[(backbone, decoder)]},", flush=True)


if __name__ == "__main__":
    main()
