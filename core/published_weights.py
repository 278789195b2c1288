"""Published geospatial backbones: SSL4EO-S12 (Sentinel-2 L1C), SSL4EO-L (Landsat TM / ETM+ / OLI-TIRS TOA) and
SeCo (Sentinel-2 RGB), as TorchGeo publishes them (``torchgeo/models/resnet.py``, ``docs/api/weights/*.csv``).

What is known, and how: the URLs, band lists, input scaling (TorchGeo's ``transforms``) and licences are TorchGeo's.
TorchGeo lists no full SHA-256; its file names end in the first 8 hex digits of the file's SHA-256 (torch.hub's
``check_hash`` convention), so :attr:`PublishedWeights.sha256_prefix` is that prefix and a file is verified
against it. Wavelengths (centre, nm) are the sensors' published band centres. The files hold timm ResNet state
dicts, whose key names are torchvision's (``conv1.weight``, ``layer1.0.downsample.0.weight``, ``fc.*``), with
``in_chans`` bands in the order of :attr:`bands`.

Nothing here imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Band:
    name: str
    wavelength: float  # centre, nm
    common: str = ""  # blue, green, red, nir, swir1, swir2, … ('' for none)


@dataclass(frozen=True)
class PublishedWeights:
    """One published backbone: ``x_scaled = (x - offset) / scale`` per band is what the weights saw."""

    key: str
    label: str
    backbone: str
    url: str
    bands: tuple[Band, ...]
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    scaling: str  # in words
    licence: str
    dataset: str
    method: str
    sensor: str
    sha256: str | None = None  # the full hash when known (TorchGeo gives only the prefix)

    @property
    def sha256_prefix(self) -> str:
        found = re.search(r"-([0-9a-f]{8,})\.pth$", self.url)
        return found.group(1) if found else ""

    @property
    def in_channels(self) -> int:
        return len(self.bands)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Sentinel-2 MSI (band centres of S2A).
S2 = (Band("B1", 443, "coastal"), Band("B2", 490, "blue"), Band("B3", 560, "green"), Band("B4", 665, "red"),
      Band("B5", 705, "rededge1"), Band("B6", 740, "rededge2"), Band("B7", 783, "rededge3"), Band("B8", 842, "nir"),
      Band("B8A", 865, "nir08"), Band("B9", 945, "watervapour"), Band("B10", 1375, "cirrus"),
      Band("B11", 1610, "swir1"), Band("B12", 2190, "swir2"))
S2_RGB = (S2[3], S2[2], S2[1])  # TorchGeo's RGB weights take B4, B3, B2: red first
TM = (Band("B1", 485, "blue"), Band("B2", 560, "green"), Band("B3", 660, "red"), Band("B4", 830, "nir"),
      Band("B5", 1650, "swir1"), Band("B6", 11450, "thermal"), Band("B7", 2215, "swir2"))
ETM = (Band("B1", 485, "blue"), Band("B2", 560, "green"), Band("B3", 660, "red"), Band("B4", 835, "nir"),
       Band("B5", 1650, "swir1"), Band("B6_VCID_1", 11450, "thermal"), Band("B6_VCID_2", 11451, "thermal2"),
       Band("B7", 2220, "swir2"), Band("B8", 710, "pan"))
OLI = (Band("B1", 443, "coastal"), Band("B2", 482, "blue"), Band("B3", 562, "green"), Band("B4", 655, "red"),
       Band("B5", 865, "nir"), Band("B6", 1610, "swir1"), Band("B7", 2200, "swir2"), Band("B8", 590, "pan"),
       Band("B9", 1373, "cirrus"), Band("B10", 10900, "thermal"), Band("B11", 12000, "thermal2"))

_HF = "https://hf.co/torchgeo"
_L = f"{_HF}/ssl4eo_landsat/resolve/1c88bb51b6e17a21dde5230738fa38b74bd74f76"
_S12_SCALING = "top-of-atmosphere reflectance × 10000 (Sentinel-2 L1C digital numbers), divided by 10000"
_L_SCALING = ("top-of-atmosphere values scaled to 0–255 as in the SSL4EO-L images (uint8), divided by 255; "
              "scale your image the same way")
#: SeCo, as TorchGeo's transforms define it: (x - min) / (max - min), × 255, then ImageNet mean / std.
_SECO_MIN, _SECO_MAX = (3.0, 2.0, 0.0), (88.0, 103.0, 129.0)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_SECO_OFFSET = tuple(lo + m * (hi - lo) / 255 for lo, hi, m in zip(_SECO_MIN, _SECO_MAX, _IMAGENET_MEAN))
_SECO_SCALE = tuple(s * (hi - lo) / 255 for lo, hi, s in zip(_SECO_MIN, _SECO_MAX, _IMAGENET_STD))
_SECO_SCALING = ("8-bit RGB (SeCo's Sentinel-2 true-colour values), stretched from min (3, 2, 0) to max "
                 "(88, 103, 129), × 255, then ImageNet mean / std — as TorchGeo's SeCo transforms")


def _s12(backbone: str, url: str) -> PublishedWeights:
    return PublishedWeights(
        f"ssl4eo-s12-moco-{backbone}", f"SSL4EO-S12 MoCo {backbone} (Sentinel-2 L1C, 13 bands)", backbone, url,
        S2, (0.0,) * 13, (10000.0,) * 13, _S12_SCALING, "CC-BY-4.0", "SSL4EO-S12", "moco", "Sentinel-2 MSI L1C")


def _ssl4eo_l(sensor: str, name: str, bands: tuple[Band, ...], backbone: str, digest: str) -> PublishedWeights:
    n = len(bands)
    return PublishedWeights(
        f"ssl4eo-l-{sensor}-moco-{backbone}", f"SSL4EO-L MoCo {backbone} ({name} TOA, {n} bands)", backbone,
        f"{_L}/{backbone}_landsat_{sensor.replace('-', '_')}_toa_moco-{digest}.pth", bands, (0.0,) * n,
        (255.0,) * n, _L_SCALING, "CC0-1.0", "SSL4EO-L", "moco", name)


def _seco(backbone: str, url: str) -> PublishedWeights:
    return PublishedWeights(
        f"seco-{backbone}", f"SeCo {backbone} (Sentinel-2 RGB)", backbone, url, S2_RGB, _SECO_OFFSET, _SECO_SCALE,
        _SECO_SCALING, "Apache-2.0", "SeCo", "seco", "Sentinel-2 MSI (RGB)")


PUBLISHED: dict[str, PublishedWeights] = {w.key: w for w in (
    _s12("resnet18", f"{_HF}/resnet18_sentinel2_all_moco/resolve/5b8cddc9a14f3844350b7f40b85bcd32aed75918/"
                     "resnet18_sentinel2_all_moco-59bfdff9.pth"),
    _s12("resnet50", f"{_HF}/resnet50_sentinel2_all_moco/resolve/da4f3c9dbe09272eb902f3b37f46635fa4726879/"
                     "resnet50_sentinel2_all_moco-df8b932e.pth"),
    _ssl4eo_l("tm", "Landsat 4–5 TM", TM, "resnet18", "1c691b4f"),
    _ssl4eo_l("tm", "Landsat 4–5 TM", TM, "resnet50", "ba1ce753"),
    _ssl4eo_l("etm", "Landsat 7 ETM+", ETM, "resnet18", "bb88689c"),
    _ssl4eo_l("etm", "Landsat 7 ETM+", ETM, "resnet50", "e9a84d5a"),
    _ssl4eo_l("oli-tirs", "Landsat 8–9 OLI/TIRS", OLI, "resnet18", "a3002f51"),
    _ssl4eo_l("oli-tirs", "Landsat 8–9 OLI/TIRS", OLI, "resnet50", "de7f5e0f"),
    _seco("resnet18", f"{_HF}/resnet18_sentinel2_rgb_seco/resolve/f8dcee692cf7142163b55a5c197d981fe0e717a0/"
                      "resnet18_sentinel2_rgb_seco-cefca942.pth"),
    _seco("resnet50", f"{_HF}/resnet50_sentinel2_rgb_seco/resolve/fbd07b02a8edb8fc1035f7957160deed4321c145/"
                      "resnet50_sentinel2_rgb_seco-018bf397.pth"),
)}

#: Band descriptions within this many nm of a weights band's centre are placed on it.
WAVELENGTH_TOLERANCE_NM = 30.0
_COMMON_ALIASES = {"nir": ("nir", "near infrared", "near-infrared", "nir1"), "swir1": ("swir1", "swir 1", "swir16"),
                   "swir2": ("swir2", "swir 2", "swir22"), "red": ("red",), "green": ("green",), "blue": ("blue",)}


def band_key(name: str) -> str:
    """A band name in one spelling: 'B02' → 'B2', 'b8a' → 'B8A', 'SR_B4' → 'B4', 'B6_VCID_1' kept."""
    text = name.strip().upper().replace(" ", "")
    text = re.sub(r"^(SR_|ST_)", "", text)
    found = re.fullmatch(r"B(?:AND)?_?0*(\d+)(A?)(_VCID_\d)?", text)
    return f"B{found.group(1)}{found.group(2)}{found.group(3) or ''}" if found else text


def map_bands(weights: PublishedWeights, band_names: list[str] | None, in_channels: int,
              wavelengths: list[float | None] | None = None, band_map: str | None = None) -> list[int]:
    """For each image band, the index of the weights band it is placed on.

    In order of precedence: ``band_map`` (comma-separated weights band names, one per image band), the band's
    description as a weights band name ('B04', 'B4'), a common name ('red', 'nir'), its wavelength (nm, within
    :data:`WAVELENGTH_TOLERANCE_NM`). A band that cannot be placed, or two on the same weights band, is a
    ConfigError listing the weights' bands and the ``band_map`` fix.
    """
    names = [w.name for w in weights.bands]
    listing = ", ".join(f"{b.name} ({b.wavelength:g} nm{', ' + b.common if b.common else ''})" for b in weights.bands)
    fix = (f"name the image's bands after the weights' bands ({listing}) in their descriptions, or pass "
           f"--band-map with one of them per image band, e.g. --band-map {','.join(names[:min(3, len(names))])}")
    if band_map:
        given = [band_key(n) for n in band_map.split(",")]
        if len(given) != in_channels:
            raise ConfigError(f"the band map names {len(given)} band(s) but the image has {in_channels}",
                              fix=fix)
        keys = [band_key(n) for n in names]
        unknown = [g for g in given if g not in keys]
        if unknown:
            raise ConfigError(f"band map: {', '.join(unknown)} is not a band of {weights.label}", fix=fix)
        return _distinct([keys.index(g) for g in given], names, weights, fix)
    placed = []
    for i in range(in_channels):
        name = (band_names or [None] * in_channels)[i] or ""
        wavelength = (wavelengths or [None] * in_channels)[i]
        k = _place(weights, name, wavelength)
        if k is None:
            what = f"'{name}'" if name else "without a description"
            raise ConfigError(f"image band {i + 1} ({what}) cannot be placed among the bands of {weights.label}",
                              fix=fix)
        placed.append(k)
    return _distinct(placed, names, weights, fix)


def _place(weights: PublishedWeights, name: str, wavelength: float | None) -> int | None:
    keys = [band_key(b.name) for b in weights.bands]
    if name and band_key(name) in keys:
        return keys.index(band_key(name))
    lowered = name.strip().lower()
    for common, aliases in _COMMON_ALIASES.items():
        if lowered in aliases:
            hits = [k for k, b in enumerate(weights.bands) if b.common == common]
            if hits:
                return hits[0]
    if wavelength:
        k = min(range(len(weights.bands)), key=lambda j: abs(weights.bands[j].wavelength - wavelength))
        if abs(weights.bands[k].wavelength - wavelength) <= WAVELENGTH_TOLERANCE_NM:
            return k
    return None


def _distinct(placed: list[int], names: list[str], weights: PublishedWeights, fix: str) -> list[int]:
    seen: dict[int, int] = {}
    for i, k in enumerate(placed):
        if k in seen:
            raise ConfigError(f"image bands {seen[k] + 1} and {i + 1} both fall on {names[k]} of {weights.label}",
                              fix=fix)
        seen[k] = i
    return placed
