"""The train dialog's presets, its training-time estimate before starting, and land-cover colours for classes."""

from __future__ import annotations

import pytest
from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

from geofm.core import cost
from geofm.core.config import TrainConfig
from geofm.core.presets import PRESETS, preset_of
from geofm.core.registries import BACKBONES, DECODERS
from geofm.core.schema import default_of


def _add(layer):
    assert layer.isValid(), layer.source()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def dialog(plugin, scene_image, scene_polygons):
    dialog = plugin.open_train()
    dialog.image_combo.setLayer(_add(QgsRasterLayer(str(scene_image), "landsat")))
    dialog.label_combo.setLayer(_add(QgsVectorLayer(str(scene_polygons), "polygons", "ogr")))
    dialog.field_combo.setField("label")
    yield dialog
    dialog.close()


def test_balanced_is_the_shipped_defaults_and_best_is_bigger():
    balanced = PRESETS["balanced"][2]
    assert all(value == default_of(TrainConfig, key) for key, value in balanced.items())
    best, quick = PRESETS["best"][2], PRESETS["quick"][2]
    assert BACKBONES.names().index(best["backbone"]) > BACKBONES.names().index(balanced["backbone"])
    assert best["epochs"] > 0 and best["patience"] > 0 and 0 < quick["epochs"] < cost.AUTO_EPOCHS[0]
    for _label, _help, values in PRESETS.values():
        TrainConfig(images=["a.tif"], labels=["b.tif"], **values).validate()  # types and ranges of the schema


def test_a_preset_sets_the_widgets_and_a_hand_change_makes_it_custom(dialog):
    combo = dialog.preset_combo
    combo.setCurrentIndex(combo.findData("best"))
    values = dialog.setting_values()
    assert values["backbone"] == "resnet50" and values["epochs"] == 100 and values["patience"] == 15
    assert dialog.config().backbone == "resnet50"
    dialog.widgets["epochs"].setValue(7)
    assert combo.currentText() == "Custom" and dialog.setting_values()["backbone"] == "resnet50"
    combo.setCurrentIndex(combo.findData("balanced"))
    assert preset_of(dialog.setting_values()) == "balanced" and dialog.setting_values()["epochs"] == 0
    # backbone, decoder and learning rate stay under Advanced
    assert {"backbone", "decoder", "lr"} <= {s.name for s in dialog.settings.values() if s.advanced}


def test_estimate_is_shown_before_training_and_follows_the_settings(dialog):
    combo = dialog.preset_combo
    combo.setCurrentIndex(combo.findData("quick"))
    quick = dialog.estimate_label.text()
    combo.setCurrentIndex(combo.findData("best"))
    best = dialog.estimate_label.text()
    assert "on this computer's CPU" in quick and "× 2 epochs" in quick and "× 100 epochs" in best
    # the scene (489 × 443 px, polygons over part of it): tiles of 128 px at 50 % overlap over the shared area
    width, height = (dialog.image_combo.currentLayer().width(), dialog.image_combo.currentLayer().height())
    assert cost.window_count(width, height, 128, 50) == 7 * 6
    seconds = {}
    for name in ("quick", "best"):
        values = PRESETS[name][2]
        seconds[name], _ = cost.training_seconds(42, 0.2, values["epochs"], values["backbone"], values["decoder"], 128)
    assert seconds["best"] > 20 * seconds["quick"]
    dialog.label_combo.setLayer(None)
    assert dialog.estimate_label.text().startswith("Known once image and labels are chosen")


def test_cost_table_covers_every_backbone_and_decoder():
    assert set(cost.CPU_SECONDS_PER_TILE) == {(b, d) for b in BACKBONES.names() for d in DECODERS.names()}
    assert cost.CPU_SECONDS_PER_TILE[("resnet50", "fpn")] > cost.CPU_SECONDS_PER_TILE[("resnet18", "fpn")]
    assert cost.duration_text(30) == "about 30 s" and cost.duration_text(600) == "about 10 min"
    assert cost.duration_text(4 * 3600) == "about 4.0 h"


def test_window_count_matches_the_tiles_the_engine_lays():
    from geofm.core.config import stride_for
    from geofm.core.tiles import tile_windows

    for width, height, tile, overlap in ((489, 443, 64, 50), (489, 443, 128, 0), (128, 300, 128, 25)):
        assert cost.window_count(width, height, tile, overlap) == len(
            tile_windows(width, height, tile, stride_for(tile, overlap)))
    assert cost.window_count(100, 300, 128, 50) == 0


def test_classes_without_a_style_get_land_cover_colours(dialog):
    colours = {c["name"]: c["colour"] for c in dialog.class_table.classes()}
    assert set(colours) == {"agriculture", "developed", "forest", "herbaceous", "sediment", "shrubland", "water"}
    assert colours == {"agriculture": "#f0d43a", "developed": "#b0534f", "forest": "#1e5e2b",
                       "herbaceous": "#9fd26b", "sediment": "#d2b48c", "shrubland": "#8a8a2e", "water": "#1f6fd1"}


@pytest.mark.parametrize(("name", "colour"), [
    ("Open Water", "#1f6fd1"), ("Woody Wetlands", "#3aa6a0"), ("Deciduous Forest", "#1e5e2b"),
    ("Shrub/Scrub", "#8a8a2e"), ("Cultivated Crops", "#f0d43a"), ("Perennial Ice/Snow", "#f4f6f8"),
    ("Developed, High Intensity", "#b0534f"), ("Barren Land (Rock/Sand/Clay)", "#d2b48c"),
    ("Grassland/Herbaceous", "#9fd26b"), ("class 3", "#f0e442"),
])
def test_land_cover_colour_by_class_name(name, colour):
    from geofm.geofm_qgis.classes_table import default_colour

    assert default_colour(name, 3) == colour
