"""The same training entry point under torchrun: 2 CPU processes (gloo), rank 0 alone writes files."""

import json
import os
import subprocess
import sys

from geofm.core.package import load_package

from rasters import separable_scene


def test_two_process_ddp_training_completes(tmp_path):
    img, lbl = separable_scene(tmp_path, size=96)
    out = tmp_path / "out"
    out.mkdir()
    cfg = dict(images=[str(img)], labels=[str(lbl)], backbone="resnet18", weights="none", tile_size=32, overlap=50,
               batch_size=4, epochs=2, val_fraction=0.25, split_block=48, output=str(out / "ddp.geofm"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "geofm.core.cli", "train", "--config", str(tmp_path / "cfg.json"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("epoch 2:") == 1, "rank 0 alone reports progress"
    # the finished run's checkpoint was removed (keep_checkpoint is off by default), by rank 0 without a clash
    assert sorted(p.name for p in out.iterdir()) == ["ddp.geofm", "ddp.metrics.json"]
    package = load_package(out / "ddp.geofm")
    assert package.metadata["metrics"]["mean_iou"] is not None
    assert package.classes.values == [10, 20, 30]
