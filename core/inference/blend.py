"""The rolling buffer where the windows' weighted probabilities are summed, and the rows it hands on when finished.

Windows arrive strip by strip (a strip: one row of windows). The buffer holds only the extent rows the current strip
touches (at most one tile of them); rows that no later window reaches are finished and handed on as
:class:`FinishedRows`, a few at a time, then the rest of the buffer moves up. Memory: K × tile × extent width.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

FINISH_ROWS = 32  # finished rows handed on at a time (bounds the sinks' temporary arrays)


@dataclass
class FinishedRows:
    """Extent rows [row, row + n) whose every window is in.

    ``sums`` [K, n, width]: probabilities summed with window weights (a view into the buffer: use it before the
    next rows are asked for); ``keep`` [n, width]: valid pixels inside the extent's polygons; ``row_weight`` [n] and
    ``col_weight`` [width]: the total window weight of each row and column.
    """

    row: int
    sums: np.ndarray
    keep: np.ndarray
    row_weight: np.ndarray
    col_weight: np.ndarray
    _index: np.ndarray | None = field(default=None, repr=False)
    _probabilities: np.ndarray | None = field(default=None, repr=False)

    @property
    def index(self) -> np.ndarray:
        """Class index 0..K-1 [n, width] of the highest blended probability (meaningless where not ``keep``)."""
        if self._index is None:
            self._index = self.sums.argmax(axis=0)
        return self._index

    @property
    def probabilities(self) -> np.ndarray:
        """Blended probabilities [K, n, width] (sums divided by the total weight); read-only for sinks."""
        if self._probabilities is None:
            self._probabilities = self.sums / np.outer(self.row_weight, self.col_weight)
        return self._probabilities


class Blender:
    """Weighted probability sums of an extent ``height`` × ``width`` px, kept for one tile of rows at a time.

    ``weights`` [T,T] is each window's weight per pixel; ``row_weight`` [height] and ``col_weight`` [width] are the
    total weights the windows give (see :class:`.windows.WindowGrid`).
    """

    def __init__(self, num_classes: int, weights: np.ndarray, row_weight: np.ndarray, col_weight: np.ndarray):
        self.tile = weights.shape[0]
        self.height, self.width = len(row_weight), len(col_weight)
        self.weights, self.row_weight, self.col_weight = weights.astype(np.float32), row_weight, col_weight
        rows = min(self.height, self.tile)
        self.sums = np.zeros((num_classes, rows, self.width), np.float32)
        self.keep = np.zeros((rows, self.width), bool)
        self.top = 0  # extent row held in buffer row 0

    def add(self, row: int, col: int, probs: np.ndarray, keep: np.ndarray) -> None:
        """Add probabilities [K, T, T] of the window at extent (row, col), weighted and clipped to the extent;
        ``keep`` [T, T] marks its pixels to be written (valid, inside the polygons)."""
        r0, r1, c0, c1 = max(row, 0), min(row + self.tile, self.height), max(col, 0), min(col + self.tile, self.width)
        part = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        self.sums[:, r0 - self.top : r1 - self.top, c0:c1] += probs[(slice(None), *part)] * self.weights[part]
        self.keep[r0 - self.top : r1 - self.top, c0:c1] |= keep[part]

    def finish(self, until: int) -> Iterator[FinishedRows]:
        """Hand on rows [top, until) a few at a time, then move the rest of the buffer up."""
        n = until - self.top
        if n <= 0:
            return
        for a in range(0, n, FINISH_ROWS):
            b = min(a + FINISH_ROWS, n)
            row = self.top + a
            yield FinishedRows(row, self.sums[:, a:b], self.keep[a:b], self.row_weight[row : row + b - a],
                               self.col_weight)
        _shift_up(self.sums, n)
        _shift_up(self.keep, n)
        self.top = until


def _shift_up(buffer: np.ndarray, n: int) -> None:
    """Move rows (axis -2) n.. of ``buffer`` to 0.. in place, chunk by chunk (no full copy), and zero the rest."""
    rows = buffer.shape[-2]
    for a in range(0, rows - n, n):
        b = min(a + n, rows - n)
        buffer[..., a:b, :] = buffer[..., a + n : b + n, :]
    buffer[..., max(rows - n, 0) :, :] = 0
