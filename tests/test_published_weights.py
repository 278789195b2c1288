"""Published geospatial backbones (SSL4EO-S12, SSL4EO-L, SeCo) from local files: recognised by hash, bands placed
by description or wavelength, red never swapped with blue, offline keys train from scratch with a note.

The weights files here are synthetic state dicts with the keys and shapes of TorchGeo's (timm ResNets, whose key
names are torchvision's), written by the tests; the table's hash prefix is pointed at them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
import torch
import torchvision

from geofm.core.config import TrainConfig
from geofm.core.errors import ConfigError, InputError
from geofm.core.model import build_model
from geofm.core.published_weights import PUBLISHED, band_key, map_bands
from geofm.core.registries import WEIGHT_SOURCES
from geofm.core.weights import file_sha256, load_pretrained

from rasters import separable_scene

S12 = "ssl4eo-s12-moco-resnet18"


@pytest.fixture
def s12_file(tmp_path, monkeypatch):
    """A 13-band resnet18 state dict (fc included, as published) standing in for the SSL4EO-S12 file."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    net.conv1 = torch.nn.Conv2d(13, 64, 7, 2, 3, bias=False)
    path = tmp_path / "resnet18_sentinel2_all_moco.pth"
    torch.save(net.state_dict(), path)
    entry = PUBLISHED[S12]
    digest = file_sha256(path)
    monkeypatch.setitem(PUBLISHED, S12, dataclasses.replace(entry, url=entry.url.rsplit("-", 1)[0] + f"-{digest[:8]}.pth"))
    return path, net.state_dict()["conv1.weight"]


def test_the_registry_lists_every_published_entry_and_each_knows_its_facts():
    assert set(PUBLISHED) <= set(WEIGHT_SOURCES.names())
    for entry in PUBLISHED.values():
        assert len(entry.sha256_prefix) == 8 and entry.url.startswith("https://")
        assert len(entry.offset) == len(entry.scale) == entry.in_channels and entry.licence
    s2 = PUBLISHED["ssl4eo-s12-moco-resnet50"]
    assert [b.name for b in s2.bands[1:4]] == ["B2", "B3", "B4"] and s2.bands[1].common == "blue"
    assert [b.name for b in PUBLISHED["seco-resnet18"].bands] == ["B4", "B3", "B2"], "TorchGeo's RGB order"
    assert PUBLISHED["ssl4eo-l-oli-tirs-moco-resnet50"].in_channels == 11 and s2.scale[0] == 10000


def test_band_names_in_any_spelling():
    assert [band_key(n) for n in ("B02", "b8a", "SR_B4", "Band 3", "B6_VCID_1")] == ["B2", "B8A", "B4", "B3",
                                                                                     "B6_VCID_1"]


def test_bands_are_placed_by_description_common_name_or_wavelength():
    s2 = PUBLISHED[S12]
    assert map_bands(s2, ["B02", "B03", "B04", "B08"], 4) == [1, 2, 3, 7]
    assert map_bands(s2, ["blue", "green", "red", "nir"], 4) == [1, 2, 3, 7]
    assert map_bands(s2, None, 2, wavelengths=[492.0, 1600.0]) == [1, 11]
    assert map_bands(s2, ["x", "y"], 2, band_map="B4,B8") == [3, 7], "the band map overrides descriptions"


def test_a_band_that_cannot_be_placed_is_named_with_the_fix():
    with pytest.raises(ConfigError, match=r"image band 2 \('thermal'\) cannot be placed") as err:
        map_bands(PUBLISHED[S12], ["B2", "thermal"], 2)
    assert "--band-map" in err.value.fix and "B11 (1610 nm, swir1)" in err.value.fix
    with pytest.raises(ConfigError, match="both fall on B4"):
        map_bands(PUBLISHED[S12], ["red", "B04"], 2)


def test_a_recognised_file_gives_the_kernels_of_the_image_bands_without_swapping_red_and_blue(s12_file):
    path, conv = s12_file
    model = build_model("resnet18", "simple", in_channels=3, num_classes=2, weights=str(path),
                        band_names=["B4", "B3", "B2"])  # an RGB image, red first
    got = model.backbone.conv1.weight
    scale = 13 / 3
    assert torch.allclose(got[:, 0], conv[:, 3] * scale), "red (B4) keeps the weights' red kernel"
    assert torch.allclose(got[:, 2], conv[:, 1] * scale), "blue (B2) keeps the weights' blue kernel"


def test_a_file_with_another_hash_is_not_taken_for_published_weights(tmp_path, s12_file):
    path, _ = s12_file
    other = tmp_path / "copy.pth"
    other.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(InputError, match="do not fit a torchvision resnet18"):
        load_pretrained("resnet18", str(other), 3, ["B4", "B3", "B2"])


def test_the_backbone_must_match_the_weights(s12_file):
    with pytest.raises(ConfigError, match="are for a resnet18, but this run trains a resnet50"):
        load_pretrained("resnet50", str(s12_file[0]), 3, ["B4", "B3", "B2"])


def test_offline_key_trains_from_scratch_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    notes: list[str] = []
    build_model("resnet18", "simple", in_channels=4, num_classes=2, weights=S12, notes=notes,
                band_names=["B2", "B3", "B4", "B8"])
    assert len(notes) == 1 and "SSL4EO-S12" in notes[0] and "random weights" in notes[0]
    assert "pass the file as the weights" in notes[0]


def test_a_segmentation_run_uses_the_weights_scaling_and_records_the_licence(tmp_path, s12_file):
    from geofm.core.tasks.segmentation import SegmentationTask

    image, labels = separable_scene(tmp_path, size=96, bands=4)
    with rasterio.open(image, "r+") as dst:
        for b, name in enumerate(["B02", "B03", "B04", "B08"], 1):
            dst.set_band_description(b, name)
    cfg = TrainConfig(images=[str(image)], labels=[str(labels)], weights=str(s12_file[0]), tile_size=32, epochs=1,
                      device="cpu", num_workers=0, output=str(tmp_path / "m.geofm"))
    task = SegmentationTask(cfg)
    list(task.prepare(None))
    assert task.data.stats.std == [10000.0] * 4 and task.data.stats.mean == [0.0] * 4
    assert task.pretrained["licence"] == "CC-BY-4.0" and task.pretrained["band_map"] == ["B2", "B3", "B4", "B8"]
    model = task.build_model()
    assert torch.allclose(model.backbone.conv1.weight[:, 3], s12_file[1][:, 7] * 13 / 4)
    assert np.isfinite(model.eval()(torch.zeros(1, 4, 32, 32)).detach().numpy()).all()
