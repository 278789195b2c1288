"""Every Python package of the engine and the plugin is listed for installation (a wheel would miss it otherwise)."""

from __future__ import annotations

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_installed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"geofm." + ".".join(p.parent.relative_to(REPO).parts) for top in ("core", "geofm_qgis")
             for p in (REPO / top).rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
