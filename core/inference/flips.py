"""Test-time flips: a window's probabilities averaged over its eight flips and quarter turns.

Tiles seen from above have no 'up', and training shows the model every such view (:mod:`..augment`); averaging them
at prediction time removes the part of an error that depends on the view, at eight times the cost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: (quarter turns, mirrored) of the eight views of a square tile.
VIEWS = tuple((turns, mirrored) for turns in range(4) for mirrored in (False, True))


def _view(a: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    a = np.rot90(a, turns, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if mirrored else a)


def _unview(a: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    return np.rot90(a[..., ::-1] if mirrored else a, -turns, axes=(-2, -1))


def flip_averaged(probabilities: Callable[[np.ndarray, np.ndarray], np.ndarray], raw: np.ndarray, valid: np.ndarray
                  ) -> np.ndarray:
    """``probabilities(raw [B,C,T,T], valid [B,T,T]) -> [B,K,T,T]`` averaged over :data:`VIEWS`, each turned back."""
    views = (_unview(probabilities(_view(raw, t, m), _view(valid, t, m)), t, m) for t, m in VIEWS)
    return (sum(views) / np.float32(len(VIEWS))).astype(np.float32, copy=False)
