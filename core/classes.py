"""Classes: label values, their names and colours, and the map from values to contiguous indices 0..K-1."""

from __future__ import annotations

import colorsys
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from .errors import LabelError
from .raster import open_raster

IGNORE = -1
#: More distinct values than this in a label raster means it is imagery or a continuous surface, not classes.
MAX_CLASSES = 255
SWAPPED = "did you swap image and labels?"
# Tableau 10 then its paler partners: distinct hues that read well on a map.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def default_colour(i: int) -> str:
    """The i-th colour of the default qualitative palette (golden-angle hues beyond its 20 colours)."""
    if i < len(PALETTE):
        return PALETTE[i]
    r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.85)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass(frozen=True)
class ClassInfo:
    """One class: its value in the label data, a name for people and a '#rrggbb' colour."""

    value: int
    name: str
    colour: str


class ClassMap:
    """Ordered classes; class ``i`` of the model is ``classes[i]``. Index -1 means 'ignore'."""

    def __init__(self, classes: Iterable[ClassInfo]):
        self.classes = tuple(classes)
        if not self.classes:
            raise LabelError("there are no classes", fix="give at least one class (two for a useful model)")
        values = [c.value for c in self.classes]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise LabelError(f"class values are repeated: {dupes}", fix="give each class its own value")
        self._order = np.argsort(values)
        self._sorted = np.asarray(values, dtype=np.int64)[self._order]
        self._tables: dict[np.dtype, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def colours(self) -> list[str]:
        return [c.colour for c in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassMap) and self.classes == other.classes

    def __repr__(self) -> str:
        return f"ClassMap({', '.join(f'{c.value}={c.name}' for c in self.classes)})"

    def encode(
        self,
        values: np.ndarray,
        valid: np.ndarray | None = None,
        ignore: Sequence[float] = (),
        path: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Label values (any dtype, any shape) -> int64 class indices; -1 where ``valid`` is False or in ``ignore``.

        A valid value that is no class raises :class:`LabelError` (``path`` names the file in the message).
        """
        values = np.asarray(values)
        keep = np.ones(values.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool).copy()
        if ignore:
            keep &= ~np.isin(values, list(ignore))
        out = np.full(values.shape, IGNORE, dtype=np.int64)
        v = values[keep]
        if v.size == 0:
            return out
        if values.dtype.kind in "ui" and values.dtype.itemsize <= 2:  # small integers: one table lookup
            lo = int(np.iinfo(values.dtype).min)
            idx = self._table(values.dtype)[v.astype(np.int32) - lo]
            known = idx >= 0
        else:
            check_whole_numbers(v, path)
            v = v.astype(np.int64)
            pos = np.clip(np.searchsorted(self._sorted, v), 0, len(self._sorted) - 1)
            known = self._sorted[pos] == v
            idx = self._order[pos]
        if not known.all():
            unknown = np.unique(v[~known])
            raise LabelError(
                f"label values {_listing(unknown)} are not among the classes {self.values}",
                path=path,
                fix="add these values to the classes, or list them as ignore values (they then count as unlabelled)",
            )
        out[keep] = idx
        return out

    def _table(self, dtype: np.dtype) -> np.ndarray:
        """Index of every value of a ≤16-bit integer dtype (-2 where no class), made once per dtype."""
        if dtype not in self._tables:
            info = np.iinfo(dtype)
            table = np.full(int(info.max) - int(info.min) + 1, -2, dtype=np.int64)
            for i, value in enumerate(self.values):
                if info.min <= value <= info.max:
                    table[value - int(info.min)] = i
            self._tables[dtype] = table
        return self._tables[dtype]

    def decode(self, indices: np.ndarray, fill: int = IGNORE) -> np.ndarray:
        """Class indices (any shape) -> class values (int64); index -1 (or out of range) becomes ``fill``."""
        indices = np.asarray(indices)
        lut = np.asarray(self.values, dtype=np.int64)
        inside = (indices >= 0) & (indices < len(lut))
        return np.where(inside, lut[np.clip(indices, 0, len(lut) - 1)], fill).astype(np.int64)

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready ``[{value, name, colour}, ...]`` in index order."""
        return [asdict(c) for c in self.classes]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]], source: str | os.PathLike | None = None) -> ClassMap:
        """Inverse of :meth:`to_list`; a missing name or colour gets a default. Each class is checked (see
        :func:`check_class_list`); colours given as CSS names or #rgb are stored as '#rrggbb'."""
        return cls(ClassInfo(**c) for c in check_class_list(items, source))


CLASS_EXAMPLE = '[{"value": 1, "name": "water", "colour": "#1f78b4"}, {"value": 2, "name": "forest", "colour": "green"}]'
_CLASS_KEYS = ("value", "name", "colour")


def check_class_list(items: Any, source: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """A class list as a user or a file gives it, checked and completed: ``[{value, name, colour}]`` with
    ``value`` a whole number, ``name`` text (default 'class N') and ``colour`` '#rrggbb' (from '#rrggbb', '#rgb' or
    a CSS colour name; default from the palette). :class:`LabelError` names the class and what is wrong."""
    def wrong(problem: str) -> LabelError:
        return LabelError(problem, path=source, fix=f"write the classes as a JSON list such as {CLASS_EXAMPLE} "
                                                    "(only value is required)")

    if isinstance(items, Mapping) or isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise wrong(f"the classes must be a list of classes, not {type(items).__name__} {str(items)[:60]}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise wrong(f"class {i + 1} must be an object with a value, name and colour, not {str(item)[:60]}")
        item = dict(item)
        if "color" in item and "colour" not in item:
            item["colour"] = item.pop("color")
        unknown = sorted(set(item) - set(_CLASS_KEYS))
        if unknown:
            raise wrong(f"class {i + 1} has unknown key(s) {', '.join(unknown)}; a class has {', '.join(_CLASS_KEYS)}")
        value = item.get("value")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if "value" not in item:
            raise wrong(f"class {i + 1} ({item.get('name', 'no name')!s}) has no value: the label value it stands for")
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(f"class {i + 1} has value {value!r}; a class value is a whole number (the label value)")
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise wrong(f"class {value} has name {name!r}; a name is text")
        colour = item.get("colour")
        out.append({"value": value, "name": name or f"class {value}",
                    "colour": default_colour(i) if colour in (None, "") else to_hex_colour(colour, value, source)})
    return out


def to_hex_colour(colour: Any, value: Any = None, source: str | os.PathLike | None = None) -> str:
    """'#rrggbb' for a colour given as '#rrggbb', '#rgb' or a CSS colour name ('red', 'darkgreen');
    :class:`LabelError` naming the class otherwise."""
    text = colour.strip() if isinstance(colour, str) else None
    if text and re.fullmatch(r"#[0-9a-fA-F]{6}", text):
        return text.lower()
    if text and re.fullmatch(r"#[0-9a-fA-F]{3}", text):
        return "#" + "".join(ch * 2 for ch in text[1:].lower())
    if text:
        try:
            from matplotlib.colors import to_hex

            if not text.startswith("#") and not re.fullmatch(r"[\d.]+", text):
                return to_hex(text.lower(), keep_alpha=False)
        except (ImportError, ValueError):
            pass
    which = f"class {value}" if value is not None else "a class"
    raise LabelError(f"{which} has colour {colour!r}, which is not a colour",
                     path=source, fix="give colours as '#rrggbb' (e.g. '#1f78b4') or a CSS colour name (e.g. 'red')")


def check_whole_numbers(values: np.ndarray, path: str | os.PathLike | None = None) -> None:
    """Raise :class:`LabelError` when float labels are not whole numbers (e.g. a resampled or continuous raster)."""
    if np.issubdtype(values.dtype, np.floating):
        bad = values[values != np.round(values)]
        if bad.size:
            raise LabelError(
                f"label values are not whole numbers (e.g. {_listing(np.unique(bad))}): this looks like imagery or "
                f"continuous data, or labels resampled with bilinear/cubic interpolation — {SWAPPED}",
                path=path,
                fix="give the image as the image and the class raster as the labels; a class raster has whole-number "
                    "values (resample labels with 'nearest neighbour' only)",
            )


def label_raster_problem(src: Any) -> str | None:
    """Why an open raster cannot be a label raster (several bands, complex values), or None."""
    if src.count > 1:
        return (f"the label raster has {src.count} bands, but labels are one band of class values: it looks like "
                f"an image — {SWAPPED}")
    if np.dtype(src.dtypes[0]).kind == "c":
        return f"the label raster holds complex numbers ({src.dtypes[0]}), not class values — {SWAPPED}"
    return None


def check_label_raster(src: Any) -> None:
    """Raise :class:`LabelError` naming the file when the open raster ``src`` cannot be a label raster."""
    problem = label_raster_problem(src)
    if problem:
        raise LabelError(problem, path=src.name,
                         fix="give the image as the image and the single-band class raster as the labels")


def check_several_classes(classes: ClassMap, counts: Sequence[int], where: str | os.PathLike | None = None) -> None:
    """A model needs two classes at least: raise :class:`LabelError` naming the one class that has labelled
    pixels (``counts`` per class, in class order), whatever the class list says."""
    present = [c for c, n in zip(classes.classes, counts) if n > 0]
    if len(present) != 1:
        return
    c = present[0]
    if classes.num_classes == 1:
        raise LabelError(
            f"the labels hold a single class (value {c.value}, '{c.name}'): a model needs two classes at least "
            "to learn anything",
            path=where,
            fix="label examples of the other classes too (e.g. background), check the ignore values, or, for "
                "vector labels, add a background class (--background)",
        )
    others = ", ".join(f"{o.value} '{o.name}'" for o in classes.classes if o is not c)
    raise LabelError(
        f"the training tiles hold a single class (value {c.value}, '{c.name}'); the other classes ({others}) have "
        "no labelled pixel in them",
        path=where,
        fix="label the other classes inside the image too; if they are labelled only in a small area, lower "
            "--val-share so that area is not all held out for validation",
    )


def _listing(values: np.ndarray, most: int = 10) -> str:
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:most].tolist())
    return shown + (f" … ({len(values)} in all)" if len(values) > most else "")


def classes_from_raster(
    path: str | os.PathLike,
    ignore_values: Sequence[float] = (),
    names: Mapping[int, str] | Sequence[str] | None = None,
    max_pixels: int = 1 << 22,
) -> ClassMap:
    """Scan a class raster's band 1 window by window (at most ``max_pixels`` at a time) for its class values.

    Nodata, NaN and ``ignore_values`` are skipped. Names come from ``names`` (a {value: name} mapping or a list in
    value order), else 'class N'; colours from the file's colour table, else a palette.
    """
    with open_raster(path) as src:
        check_label_raster(src)
        rows = max(1, max_pixels // src.width)
        nodata = src.nodata
        found: set[int] = set()
        for row in range(0, src.height, rows):
            data = src.read(1, window=Window(0, row, src.width, min(rows, src.height - row)))
            valid = np.isfinite(data) if np.issubdtype(data.dtype, np.floating) else np.ones(data.shape, bool)
            if nodata is not None and not np.isnan(nodata):
                valid &= data != nodata
            if ignore_values:
                valid &= ~np.isin(data, list(ignore_values))
            v = data[valid]
            check_whole_numbers(v, path)
            found.update(np.unique(v).astype(np.int64).tolist())
            if len(found) > MAX_CLASSES:
                raise LabelError(
                    f"the label raster has more than {MAX_CLASSES} distinct values: it looks like imagery or "
                    f"continuous data, not classes — {SWAPPED}",
                    path=path,
                    fix="give the image as the image and the class raster (land-cover classes as whole numbers) as "
                        "the labels, not an image or elevation model",
                )
        if not found:
            raise LabelError(
                "the label raster has no valid pixel: every pixel is nodata or an ignore value",
                path=path,
                fix="check the nodata value and ignore values, or pick the right label file",
            )
        try:
            colormap = src.colormap(1)
        except ValueError:
            colormap = {}
    values = sorted(found)
    given = dict(zip(values, names)) if isinstance(names, Sequence) else dict(names or {})
    classes = []
    for i, v in enumerate(values):
        name = given.get(v) or f"class {v}"
        colour = "#{:02x}{:02x}{:02x}".format(*colormap[v][:3]) if v in colormap else default_colour(i)
        classes.append(ClassInfo(v, name, colour))
    return ClassMap(classes)

