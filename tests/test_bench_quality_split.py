"""The learning-quality benchmark's spatial hold-out: test and training pixels never mix, every class that can be
is in test, and the test set holds about 30 % of the labelled pixels."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_quality.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", PATH)  # benchmarks/ is not a package
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _blocks_of(split, labels, k):
    rows, cols = np.nonzero(labels == k)
    r0, c0 = split.origin
    return {((r - r0) // split.block, (c - c0) // split.block) for r, c in zip(rows, cols, strict=True)}


def _dense(seed, size=(120, 150), classes=5):
    """Patchy land cover: random class per 10 px cell, one rare class in two small patches far apart."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, classes - 1, size=(size[0] // 10 + 1, size[1] // 10 + 1))
    labels = np.kron(cells, np.ones((10, 10), dtype=np.int64))[: size[0], : size[1]]
    labels[5:8, 5:8] = classes - 1
    labels[-8:-5, -8:-5] = classes - 1
    labels[rng.random(size) < 0.05] = -1  # a few unlabelled pixels (nodata)
    return labels, classes


def _points(seed, size=(200, 260), n=150, classes=4):
    rng = np.random.default_rng(seed)
    labels = np.full(size, -1, dtype=np.int64)
    labels[rng.integers(0, size[0], n), rng.integers(0, size[1], n)] = rng.integers(0, classes, n)
    return labels, classes


@pytest.mark.parametrize("make", [_dense, _points])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_class_in_two_blocks_is_in_test_and_keeps_training_pixels(bench, make, seed):
    labels, k = make(seed)
    split = bench.block_split(labels, k)
    for c in range(k):
        if len(_blocks_of(split, labels, c)) >= 2:
            assert (labels[split.test] == c).any(), f"class {c} missing from test"
        if (labels == c).any():
            assert (labels[split.train] == c).any(), f"class {c} has no training pixel"
    assert split.not_in_test == []


@pytest.mark.parametrize("make", [_dense, _points])
@pytest.mark.parametrize("buffer", [0, 3])
def test_test_and_train_are_disjoint_labelled_pixels_and_test_share_is_near_30_percent(bench, make, buffer):
    labels, k = make(7)
    split = bench.block_split(labels, k, buffer=buffer)
    assert not (split.test & split.train).any()
    assert (labels[split.test] >= 0).all() and (labels[split.train] >= 0).all()
    assert 0.2 <= split.test_share <= 0.4
    if buffer:  # no training pixel within `buffer` px (either axis) of a test pixel
        near = np.zeros_like(split.test)
        for r, c in zip(*np.nonzero(split.test), strict=True):
            near[max(0, r - buffer) : r + buffer + 1, max(0, c - buffer) : c + buffer + 1] = True
        assert not (near & split.train).any()


def test_split_is_whole_blocks_and_does_not_depend_on_anything_but_the_labels(bench):
    labels, k = _dense(11)
    a, b = bench.block_split(labels, k), bench.block_split(labels.copy(), k)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    r0, c0 = a.origin
    for br, bc in a.test_blocks:  # every labelled pixel of a test block is a test pixel
        y, x = r0 + br * a.block, c0 + bc * a.block
        block = (slice(y, y + a.block), slice(x, x + a.block))
        assert np.array_equal(a.test[block], labels[block] >= 0)


def test_a_class_in_one_block_only_stays_in_training(bench):
    labels = np.zeros((90, 90), dtype=np.int64)
    labels[:, 45:] = 1
    labels[2:5, 2:5] = 2  # one block only
    split = bench.block_split(labels, 3, blocks=9)
    assert not (labels[split.test] == 2).any()
    assert (labels[split.train] == 2).all() or (labels[split.train] == 2).sum() == 9
    assert {0, 1} <= set(np.unique(labels[split.test]).tolist())


def test_no_labels_gives_empty_masks(bench):
    split = bench.block_split(np.full((10, 10), -1), 2)
    assert not split.test.any() and not split.train.any() and split.test_blocks == []


def test_candidate_settings_are_checked_as_the_configs_check_them(bench):
    """--extra takes training settings, --also-predict prediction settings; a wrong key or value stops the run at
    once, naming the flag, rather than hours later."""
    assert bench.parse_extra(["class_weights=sqrt", "epochs=3"]) == {"class_weights": "sqrt", "epochs": 3}
    assert bench.parse_extra(["test_time_flips=true"], "--also-predict") == {"test_time_flips": True}
    with pytest.raises(SystemExit, match="--also-predict"):
        bench.parse_extra(["class_weights=sqrt"], "--also-predict")
    with pytest.raises(SystemExit, match="--extra.*class weighting"):
        bench.parse_extra(["class_weights=cubic"])
