"""The built zip installs into a fresh QGIS profile and loads from there, with QGIS's own plugin loader."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from qgis_helpers import run_in_fresh_qgis

REPO = Path(__file__).resolve().parent.parent


def test_zip_installs_into_a_fresh_profile_and_loads(tmp_path):
    out = tmp_path / "geofm.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--output", str(out)], check=True)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert "geofm/__init__.py" in names and "geofm/metadata.txt" in names and "geofm/icon.png" in names
    assert any(n.startswith("geofm/core/") for n in names) and any(n.startswith("geofm/geofm_qgis/") for n in names)
    assert not [n for n in names if "tests/" in n or "__pycache__" in n or n.endswith(".pyc")]

    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(out) as zf:
        zf.extractall(plugins)
    result = run_in_fresh_qgis(f"""
        import qgis.utils
        qgis.utils.iface = iface
        sys.path.insert(0, {str(plugins)!r})
        qgis.utils.plugin_paths = [{str(plugins)!r}]
        assert qgis.utils.loadPlugin("geofm"), "loadPlugin failed"
        assert qgis.utils.startPlugin("geofm"), "startPlugin failed"
        import geofm, geofm.core.config
        print("FROM", geofm.__file__)
        print("ENGINE", geofm.core.config.__file__)
        print("PROVIDER", QgsApplication.processingRegistry().providerById("geofm") is not None)
        qgis.utils.plugins["geofm"].unload()
        print("UNLOADED")
    """, cwd=tmp_path, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"FROM {plugins / 'geofm' / '__init__.py'}" in result.stdout, result.stdout
    assert f"ENGINE {plugins / 'geofm' / 'core' / 'config.py'}" in result.stdout
    assert "PROVIDER True" in result.stdout and "UNLOADED" in result.stdout
