"""Training settings remembered between QGIS sessions (QgsSettings): the keys are the settings the schema marks
``saved``, with the engine's defaults."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsSettings

PREFIX = "geofm/train/"
#: Marks settings remembered by a geofm that stores only the values a user changed from the defaults.
FORMAT_KEY = PREFIX + "remembered_format"
#: Earlier defaults that later changed, by measurement (docs/defaults.md). geofm before FORMAT_KEY remembered every
#: value, changed or not, so one of these remembered by it was most likely never chosen: it follows the new default.
FORMER_DEFAULTS = {"val_fraction": 0.2, "spectral_branch": False, "lr_schedule": "constant", "class_weights": False}
#: Remembered values whose meaning a later schema renamed: class weights were on or off (on: inverse frequency).
RENAMED_VALUES = {"class_weights": {"true": "inverse", "false": "none"}}


def saved_settings() -> list:
    """The TrainConfig settings (core.schema.Setting) remembered in QgsSettings."""
    from ..core.config import TrainConfig
    from ..core.schema import settings_of

    return [s for s in settings_of(TrainConfig) if s.exposed("saved")]


def defaults() -> dict[str, Any]:
    from ..core.config import TrainConfig
    from ..core.schema import default_of

    return {s.name: default_of(TrainConfig, s.name) for s in saved_settings()}


def load() -> dict[str, Any]:
    """Remembered values, each checked as a config checks it; the default where nothing (valid) is remembered."""
    from ..core.config import TrainConfig
    from ..core.errors import ConfigError
    from ..core.schema import check_values

    store = QgsSettings()
    _forget_former_defaults(store)
    out = defaults()
    for key, default in list(out.items()):
        value = store.value(PREFIX + key, None)
        if value is None:
            continue
        value = RENAMED_VALUES.get(key, {}).get(str(value).lower(), value)
        try:
            value = type(default)(value) if not isinstance(default, bool) else str(value).lower() in ("true", "1")
            out.update(check_values(TrainConfig, {key: value}, "the remembered settings"))
        except (TypeError, ValueError, ConfigError):
            pass  # a value from an older version that no longer fits: the default
    return out


def _forget_former_defaults(store: QgsSettings) -> None:
    """Once, for settings remembered by a geofm before FORMAT_KEY: forget the values equal to a former default."""
    if store.value(FORMAT_KEY, None) is not None:
        return
    for key, former in FORMER_DEFAULTS.items():
        value = store.value(PREFIX + key, None)
        if value is not None and str(value).lower() == str(former).lower():
            store.remove(PREFIX + key)
    store.setValue(FORMAT_KEY, 2)


def save(values: dict[str, Any]) -> None:
    """Remember those of ``values`` (only the saved settings) that differ from the defaults; a value equal to its
    default is forgotten, so it follows the default when a later geofm changes it."""
    store = QgsSettings()
    for key, default in defaults().items():
        if key not in values:
            continue
        if values[key] == default:
            store.remove(PREFIX + key)
        else:
            store.setValue(PREFIX + key, values[key])
    store.setValue(FORMAT_KEY, 2)
