"""Per-band statistics over valid pixels (one streaming pass, bounded memory) and normalisation of tiles."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, DataError, Warn, warn

EPS = 1e-6
BINS = 4096
#: Pixel values this far from zero are no measurement but an unmasked nodata sentinel (3.4e38 is float32's largest,
#: -1e38 and ±1e30 are common fill values); :func:`raster.valid_mask` treats them as nodata.
EXTREME = 1e30


@dataclass
class BandStats:
    """Per-band mean and std (pixel units), optional low/high percentiles; plain floats the model package stores."""

    mean: list[float]
    std: list[float]
    low: list[float] | None = None
    high: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandStats:
        as_floats = lambda v: None if v is None else [float(x) for x in v]  # noqa: E731
        return cls(as_floats(d["mean"]), as_floats(d["std"]), as_floats(d.get("low")), as_floats(d.get("high")))


class _Histogram:
    """Fixed number of bins over a range that doubles when a value falls outside it (merging bins pairwise)."""

    def __init__(self, lo: float, hi: float):
        self.lo, self.width = lo, max(hi - lo, EPS) * (1 + 1e-9)
        self.counts = np.zeros(BINS, dtype=np.int64)

    def add(self, v: np.ndarray) -> None:
        while v.min() < self.lo or v.max() >= self.lo + self.width:
            merged = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts[:] = 0
            if v.min() < self.lo:
                self.counts[BINS // 2 :] = merged
                self.lo -= self.width
            else:
                self.counts[: BINS // 2] = merged
            self.width *= 2
        idx = np.minimum(((v - self.lo) / self.width * BINS).astype(np.int64), BINS - 1)
        self.counts += np.bincount(idx, minlength=BINS)

    def quantile(self, q: float) -> float:
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, q * cum[-1]))
        return self.lo + (i + 0.5) * self.width / BINS


def compute_stats(
    samples: Iterable[tuple[np.ndarray, np.ndarray]], percentiles: tuple[float, float] | None = None,
    warn_to: Warn | None = None,
) -> BandStats:
    """Mean and std per band over the valid pixels of ``samples`` ((data [C,h,w], valid [h,w]) pairs), one pass.

    Pixels where ``valid`` is False or the band is NaN/inf are skipped. Means merge in float64 (Chan et al.), so
    memory does not grow with the number of samples. ``percentiles`` (e.g. (2, 98)) adds ``low``/``high`` per band
    from a 4096-bin histogram. A constant band gets std 1 and a warning (to ``warn_to``, else a GeoFMWarning).
    A job that reports progress feeds a :class:`StatsAccumulator` itself.
    """
    acc = StatsAccumulator(percentiles)
    for data, valid in samples:
        acc.add(data, valid)
    return acc.result(warn_to)


class StatsAccumulator:
    """:func:`compute_stats` one sample at a time, so a caller can report progress (or stop) between samples."""

    def __init__(self, percentiles: tuple[float, float] | None = None):
        self.percentiles = percentiles
        self.n = self.mean = self.m2 = None
        self.hists: list[_Histogram | None] = []

    def add(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Merge the valid, finite pixels of ``data`` [C,h,w] (``valid`` [h,w]) into the running statistics."""
        if self.n is None:
            c = data.shape[0]
            self.n, self.mean, self.m2, self.hists = np.zeros(c), np.zeros(c), np.zeros(c), [None] * c
        n, mean, m2, hists = self.n, self.mean, self.m2, self.hists
        for b in range(data.shape[0]):
            v = data[b][valid & np.isfinite(data[b])].astype(np.float64)
            if v.size == 0:
                continue
            nb, mb = v.size, v.mean()
            m2b = ((v - mb) ** 2).sum()
            delta, total = mb - mean[b], n[b] + nb
            mean[b] += delta * nb / total
            m2[b] += m2b + delta**2 * n[b] * nb / total
            n[b] = total
            if self.percentiles is not None:
                hists[b] = hists[b] or _Histogram(float(v.min()), float(v.max()))
                hists[b].add(v)

    def result(self, warn_to: Warn | None = None) -> BandStats:
        """The statistics so far; :class:`DataError` when a band had no valid pixel."""
        n, mean, m2, hists = self.n, self.mean, self.m2, self.hists
        if n is None or not (n > 0).all():
            empty = [] if n is None else [b + 1 for b in range(len(n)) if n[b] == 0]
            raise DataError(
                "no valid pixel to compute band statistics from" + (f" in band(s) {empty}" if empty else ""),
                fix="check the image's nodata value, and that the labelled area covers valid image pixels",
            )
        std = np.sqrt(m2 / n)
        for b in np.flatnonzero(std <= EPS * np.maximum(1.0, np.abs(mean))):
            warn(f"band {b + 1} is constant ({mean[b]:g}) over the training pixels; it carries no information "
                 "(normalised it is 0 everywhere) — consider leaving it out", warn_to, stacklevel=3)
            std[b] = 1.0
        low = high = None
        if self.percentiles is not None:
            low = [h.quantile(self.percentiles[0] / 100) for h in hists]
            high = [h.quantile(self.percentiles[1] / 100) for h in hists]
        return BandStats(mean.tolist(), std.tolist(), low, high)


def normalise(data: np.ndarray, valid: np.ndarray, stats: BandStats | None, mode: str = "global") -> np.ndarray:
    """Standardise ``data`` [C,h,w] per band to float32; invalid and non-finite pixels become 0.

    'global': (x - mean) / std from ``stats`` (clipped to low/high first when ``stats`` has them);
    'per_tile': (x - mean) / (std + eps) over this tile's valid pixels (a constant band gives 0).
    """
    x = data.astype(np.float32)  # a copy: the caller's array is left alone
    ok = valid[None] & np.isfinite(x)
    if mode == "global":
        if stats is None:
            raise ConfigError("global normalisation needs band statistics", fix="compute them with compute_stats()")
        if len(stats.mean) != x.shape[0]:
            raise DataError(
                f"the image has {x.shape[0]} bands but the statistics are for {len(stats.mean)}",
                fix="use an image with the same bands, in the same order, as the training image",
            )
        per_band = lambda v: np.asarray(v, dtype=np.float32)[:, None, None]  # noqa: E731
        if stats.low is not None and stats.high is not None:
            np.clip(x, per_band(stats.low), per_band(stats.high), out=x)
        x -= per_band(stats.mean)
        x /= per_band(stats.std)
    elif mode == "per_tile":
        for b in range(x.shape[0]):
            v = x[b][ok[b]].astype(np.float64)
            x[b] = (x[b] - v.mean()) / (v.std() + EPS) if v.size else 0.0
    else:
        raise ConfigError(f"unknown normalisation mode {mode!r}", fix="use 'global' or 'per_tile'")
    np.copyto(x, 0.0, where=~ok)
    return x
