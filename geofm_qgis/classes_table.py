"""Class values, names and colours: read from a label layer's symbology, edited in a small table."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsColorButton
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

#: Colours for classes the symbology does not colour (colour-blind-safe, from Okabe & Ito, then Tableau).
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999",
           "#8c564b", "#17becf", "#bcbd22", "#7f7f7f")
MAX_CLASSES = 255


#: Land-cover colours by words in a class name (lower case, first match wins: wetland before water and grass,
#: shrub before forest), in the spirit of the NLCD / CORINE legends analysts know.
LAND_COVER_COLOURS = (
    (("wetland", "marsh", "swamp", "bog", "fen", "mangrove"), "#3aa6a0"),  # teal
    (("water", "river", "lake", "sea", "ocean", "reservoir", "pond", "stream"), "#1f6fd1"),  # blue
    (("snow", "ice", "glacier"), "#f4f6f8"),  # white
    (("urban", "developed", "built", "building", "city", "settlement", "road", "impervious", "residential",
      "industrial", "artificial"), "#b0534f"),  # red-grey
    (("shrub", "scrub", "bush", "heath"), "#8a8a2e"),  # olive
    (("forest", "tree", "wood", "conifer", "deciduous", "evergreen", "canopy"), "#1e5e2b"),  # dark green
    (("grass", "herbaceous", "meadow", "pasture", "rangeland", "lawn", "savanna"), "#9fd26b"),  # light green
    (("crop", "agri", "farm", "cultivat", "arable", "paddy", "rice", "orchard", "vineyard", "field"),
     "#f0d43a"),  # yellow
    (("bare", "sediment", "sand", "soil", "rock", "barren", "beach", "dune", "quarry", "mine", "fallow"),
     "#d2b48c"),  # tan
    (("cloud",), "#ffffff"),
    (("shadow",), "#3c3c3c"),
)


def default_colour(name: str, i: int) -> str:
    """A land-cover colour when the class name says what it is (water blue, forest dark green…), else the
    ``i``-th colour of PALETTE."""
    text = name.lower()
    for words, colour in LAND_COVER_COLOURS:
        if any(word in text for word in words):
            return colour
    return PALETTE[i % len(PALETTE)]


def classes_from_layer(layer: QgsMapLayer | None, field: str | None = None) -> list[dict[str, Any]]:
    """[{value, name, colour}] from a label layer: its paletted / categorised symbology when it has one,
    else its distinct values (rasters: band 1; polygons: ``field``) with names 'class N' and default colours
    (land-cover colours where the class name says what it is: ``default_colour``).

    For a text field the values are 1..K in name order and the name is the field's text (the engine matches
    polygons to classes by it, so it is not editable then).
    """
    if isinstance(layer, QgsRasterLayer):
        return _raster_classes(layer)
    if isinstance(layer, QgsVectorLayer) and field and layer.fields().indexOf(field) >= 0:
        return _vector_classes(layer, field)
    return []


#: Field names that hold a class, in order of preference (compared in lower case); id fields are never guessed.
CLASS_FIELD_NAMES = ("class_name", "classname", "class", "label", "landcover", "land_cover", "lc", "category",
                     "type", "name", "class_id", "classid", "code", "value")
ID_FIELDS = ("fid", "id", "ogc_fid", "objectid", "gid", "osm_id")
#: More distinct raster values than this look like imagery rather than classes.
MAX_LABEL_VALUES = 100


def class_field_guess(layer: QgsVectorLayer) -> str:
    """The field most likely to hold each feature's class, or '' (the user picks) when none looks like one.

    Named like a class field first (text fields before numbers), else the first text field that repeats values;
    never an id field, never a field where every feature has its own value.
    """
    fields = [f for f in layer.fields() if f.name().lower() not in ID_FIELDS]
    ranked = sorted((f for f in fields if f.name().lower() in CLASS_FIELD_NAMES),
                    key=lambda f: (f.isNumeric(), CLASS_FIELD_NAMES.index(f.name().lower())))
    text = [f for f in fields if not f.isNumeric() and _repeats(layer, f.name())]
    chosen = ranked or text
    return chosen[0].name() if chosen else ""


def _repeats(layer: QgsVectorLayer, field: str) -> bool:
    return len(layer.uniqueValues(layer.fields().indexOf(field))) < max(2, layer.featureCount())


def label_layer_problem(image: QgsMapLayer, labels: QgsMapLayer) -> str | None:
    """Why a raster label layer cannot be labels (the image itself, imagery-like values), or None."""
    if not isinstance(labels, QgsRasterLayer):
        return None
    if labels.id() == image.id() or labels.source() == image.source():
        return (f"“{labels.name()}” is the image itself. Choose the layer that holds the classes (a class raster, "
                "or polygons with a class field).")
    if labels.providerType() != "gdal":  # reading a web layer's values would fetch the whole world
        return (f"“{labels.name()}” is a web or virtual layer, not a class raster. Choose the layer that holds the "
                "classes (a class raster file, or polygons with a class field).")
    if labels.bandCount() > 1:
        return (f"“{labels.name()}” has {labels.bandCount()} bands, so it looks like imagery, not classes: did you "
                "swap image and labels? A label raster has one band of class values.")
    values = QgsPalettedRasterRenderer.classDataFromRaster(labels.dataProvider(), 1)
    if any(not float(c.value).is_integer() for c in values):
        return (f"“{labels.name()}” holds non-integer values, so it looks like imagery, not classes: did you "
                "swap image and labels?")
    if len(values) > MAX_LABEL_VALUES:
        return (f"“{labels.name()}” has more than {MAX_LABEL_VALUES} distinct values, so it looks like imagery, "
                "not classes: did you swap image and labels?")
    return None


def _raster_classes(layer: QgsRasterLayer) -> list[dict[str, Any]]:
    renderer = layer.renderer()
    if isinstance(renderer, QgsPalettedRasterRenderer):
        items = [(c.value, c.label, c.color) for c in renderer.classes()]
    else:
        items = [(c.value, "", None) for c in QgsPalettedRasterRenderer.classDataFromRaster(layer.dataProvider(), 1)]
    out = []
    for i, (value, label, colour) in enumerate(sorted(items, key=lambda t: t[0])[:MAX_CLASSES]):
        number = int(value)
        text = label if label and label != str(value) and label != f"{value:g}" else f"class {number}"
        out.append({"value": number, "name": text, "colour": colour.name() if colour else default_colour(text, i)})
    return out


def _vector_classes(layer: QgsVectorLayer, field: str) -> list[dict[str, Any]]:
    renderer = layer.renderer()
    styled: dict[Any, tuple[str, str]] = {}
    if isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == field:
        for cat in renderer.categories():
            if cat.value() not in (None, "") and cat.symbol() is not None:
                styled[cat.value()] = (cat.label(), cat.symbol().color().name())
    values = sorted(v for v in layer.uniqueValues(layer.fields().indexOf(field)) if v is not None and v != "")
    numeric = all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in values)
    out = []
    for i, value in enumerate(values[:MAX_CLASSES]):
        label, colour = styled.get(value, ("", default_colour(str(value) if not numeric else "", i)))
        if numeric:
            out.append({"value": int(value), "name": label or f"class {int(value)}", "colour": colour})
        else:  # the name is the key the engine matches against the field, so the style's label is not used
            out.append({"value": i + 1, "name": str(value), "colour": colour})
    return out


class ClassTable(QTableWidget):
    """Value | Name | Colour; values are read-only, names and colours editable."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 3, parent)
        self.setHorizontalHeaderLabels(["Value", "Name", "Colour"])
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.setColumnWidth(2, 70)
        self.verticalHeader().setVisible(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)

    def set_classes(self, classes: list[dict[str, Any]], names_editable: bool = True) -> None:
        """Replace the rows."""
        self.setRowCount(0)
        for row, cls in enumerate(classes):
            self.insertRow(row)
            value = QTableWidgetItem(str(cls["value"]))
            value.setFlags(value.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.setItem(row, 0, value)
            name = QTableWidgetItem(cls["name"])
            if not names_editable:
                name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.setItem(row, 1, name)
            button = QgsColorButton()
            button.setColor(QColor(cls["colour"]))
            button.setShowMenu(False)
            self.setCellWidget(row, 2, button)

    def classes(self) -> list[dict[str, Any]]:
        """The rows as [{value, name, colour}]."""
        return [
            {"value": int(self.item(r, 0).text()), "name": self.item(r, 1).text().strip() or f"class {r}",
             "colour": self.cellWidget(r, 2).color().name()}
            for r in range(self.rowCount())
        ]
