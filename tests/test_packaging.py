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


def test_toolbar_icons_are_distinct_and_in_the_plugin_zip():
    """Train, Predict, Model info and Pretrain each have their own icon, shipped in the zip and a wheel."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("package_plugin", REPO / "scripts" / "package_plugin.py")
    package_plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_plugin)
    files = {str(p) for p in package_plugin.plugin_files(REPO)}
    icons = {name: (REPO / "geofm_qgis" / "icons" / f"{name}.svg") for name in ("train", "predict", "info", "pretrain")}
    for name, path in icons.items():
        assert f"geofm_qgis/icons/{name}.svg" in files
        assert path.read_text().lstrip().startswith("<svg")
    assert len({p.read_bytes() for p in icons.values()}) == 4
    plugin = (REPO / "geofm_qgis" / "plugin.py").read_text()
    assert all(f'"{name}")' in plugin for name in icons)
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "icons/*.svg" in package_data["geofm.geofm_qgis"]
