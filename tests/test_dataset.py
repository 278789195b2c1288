"""The tile dataset: shapes, nodata handling, several scenes, folder mode and DataLoader workers."""

import pickle

import numpy as np
import pytest
import rasterio
import torch
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.windows import Window
from torch.utils.data import DataLoader

from geofm.core.classes import ClassInfo, ClassMap
from geofm.core.dataset import (
    SegmentationDataset,
    build_scenes,
    cap_gdal_cache,
    index_tiles,
    pair_folders,
    stats_samples,
)
from geofm.core.errors import DataError, LabelError
from geofm.core.normalise import compute_stats

from rasters import separable_scene, write_polygons, write_raster


@pytest.fixture
def scene(tmp_path):
    return separable_scene(tmp_path, size=64)


def test_items_are_float_image_and_int_labels_with_nodata_ignored(scene):
    scenes, cm = build_scenes([scene])
    assert cm.values == [10, 20, 30]
    items = index_tiles(scenes, 32)
    stats = compute_stats(stats_samples(scenes, items))
    ds = SegmentationDataset(scenes, items, stats)
    x, y = ds[items.index((0, Window(0, 0, 32, 32)))]
    assert x.dtype == torch.float32 and x.shape == (4, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (32, 32)
    assert (y[:4] == -1).all() and (x[:, :4] == 0).all()  # the 4-row nodata border
    assert set(y[4:].unique().tolist()) == {0, 1} and torch.isfinite(x).all()


def test_all_nodata_tiles_are_skipped_and_an_all_nodata_image_is_refused(tmp_path):
    image = np.ones((2, 64, 64), np.float32)
    image[:, :, 32:] = -99999
    img = write_raster(tmp_path / "img.tif", image, nodata=-99999)
    lbl = write_raster(tmp_path / "lbl.tif", np.ones((64, 64), np.uint8))
    scenes, _ = build_scenes([(img, lbl)])
    assert {w.col_off for _, w in index_tiles(scenes, 16, stride=16)} == {0, 16}
    empty = write_raster(tmp_path / "empty.tif", np.full((2, 64, 64), -99999, np.float32), nodata=-99999)
    with pytest.raises(DataError, match="no tile has a labelled pixel") as err:
        index_tiles(build_scenes([(empty, lbl)])[0], 16)
    assert "empty.tif" in str(err.value)


def test_label_values_outside_declared_classes_are_refused_before_training(scene):
    declared = ClassMap([ClassInfo(10, "a", "#000000"), ClassInfo(20, "b", "#111111")])
    with pytest.raises(LabelError, match="label values 30 are not among the classes") as err:
        build_scenes([scene], class_map=declared)
    assert "labels.tif" in str(err.value)


def test_several_scenes_form_one_dataset_with_shared_classes(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = separable_scene(tmp_path / "a", size=48), separable_scene(tmp_path / "b", size=48, seed=1)
    lbl = write_raster(tmp_path / "b" / "labels40.tif", np.full((48, 48), 40, np.uint8))
    scenes, cm = build_scenes([first, (second[0], lbl)])
    assert cm.values == [10, 20, 30, 40]
    items = index_tiles(scenes, 32)
    ds = SegmentationDataset(scenes, items, None, mode="per_tile")
    assert {i for i, _ in items} == {0, 1}
    assert (ds[[i for i, _ in items].index(1)][1] == 3).any()
    three_bands = write_raster(tmp_path / "b" / "rgb.tif", np.ones((3, 48, 48), np.float32))
    with pytest.raises(DataError, match="has 3 bands, but .* has 4"):
        build_scenes([first, (three_bands, lbl)])


def test_dataloader_workers_open_their_own_files(scene):
    scenes, _ = build_scenes([scene])
    items = index_tiles(scenes, 16)
    ds = SegmentationDataset(scenes, items, None, mode="per_tile")
    ds[0]  # the parent opens files; workers must not inherit or pickle them
    assert ds._handles
    assert pickle.loads(pickle.dumps(ds))._handles == {}
    serial = torch.stack([ds[k][1] for k in range(len(ds))])
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
    parallel = torch.cat([y for _, y in loader])
    assert torch.equal(serial, parallel)
    ds.close()


def test_folder_mode_pairs_tiles_by_name_and_lists_the_unpaired(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    for name in ("t1", "t2", "t3"):
        write_raster(images / f"{name}.tif", np.ones((3, 16, 16), np.float32))
        write_raster(labels / f"{name}.tif", np.full((16, 16), int(name[1]), np.uint8))
    pairs = pair_folders(images, labels)
    assert [p[0].name for p in pairs] == ["t1.tif", "t2.tif", "t3.tif"]
    scenes, cm = build_scenes(pairs)
    assert len(index_tiles(scenes, 16)) == 3
    write_raster(images / "t4.tif", np.ones((3, 16, 16), np.float32))
    write_raster(labels / "t9.tif", np.ones((16, 16), np.uint8))
    with pytest.raises(LabelError, match=r"images without labels \['t4'\], labels without images \['t9'\]"):
        pair_folders(images, labels)


def test_vector_labels_scene_labels_only_inside_polygons(tmp_path):
    img = write_raster(tmp_path / "img.tif", np.ones((2, 64, 64), np.float32))
    x0, y0 = 500_000.0 + 100, 6_000_000.0 - 100  # pixel (10, 10) of the image
    ring = [(x0, y0), (x0 + 100, y0), (x0 + 100, y0 - 100), (x0, y0 - 100)]
    polys = write_polygons(tmp_path / "p.gpkg", [(ring, {"kind": "water"})])
    scenes, cm = build_scenes([(img, polys)], field="kind")
    assert cm.names == ["water"]
    items = index_tiles(scenes, 32)
    y = SegmentationDataset(scenes, items, None, mode="per_tile")[0][1]
    assert (y == 0).sum() == 100 and (y == -1).sum() == 32 * 32 - 100


def test_real_scene_tiles_normalise_to_finite_values_with_nodata_labelled_ignore(scene_image, scene_labels):
    scenes, cm = build_scenes([(scene_image, scene_labels)])
    items = index_tiles(scenes, 128)
    stats = compute_stats(stats_samples(scenes, items))
    ds = SegmentationDataset(scenes, items, stats)
    with rasterio.open(scene_image) as src:
        nodata_tiles = 0
        for k, (_, w) in enumerate(ds.items):
            x, y = ds[k]
            raw = src.read(1, window=w)
            assert torch.isfinite(x).all() and x.abs().max() < 50
            assert (y[torch.from_numpy(raw == -99999)] == -1).all()
            nodata_tiles += bool((raw == -99999).any())
    assert nodata_tiles > 0
    ds.close()


def test_gdal_block_cache_is_capped_but_never_raised():
    before = get_gdal_config("GDAL_CACHEMAX")
    try:
        cap_gdal_cache(64)
        assert get_gdal_config("GDAL_CACHEMAX") == 64 * 2**20
        cap_gdal_cache(4096)
        assert get_gdal_config("GDAL_CACHEMAX") == 64 * 2**20
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)
