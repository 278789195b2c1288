"""The dependency check: a clear dialog when torch is missing, the right interpreter and index, a working install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import geofm
from geofm.geofm_qgis import deps

from qgis_helpers import run_in_fresh_qgis

REPO = Path(geofm.__file__).resolve().parent


@pytest.mark.parametrize(
    ("platform", "prefix", "executable", "present", "expected"),
    [
        ("win32", r"C:\OSGeo4W\apps\Python312", r"C:\OSGeo4W\bin\qgis-bin.exe",
         {r"C:\OSGeo4W\apps\Python312\python.exe"}, r"C:\OSGeo4W\apps\Python312\python.exe"),
        ("win32", r"C:\QGIS\apps\Python39", r"C:\QGIS\bin\qgis-ltr-bin.exe",
         {r"C:\QGIS\apps\Python39\python3.exe"}, r"C:\QGIS\apps\Python39\python3.exe"),
        ("darwin", "/Applications/QGIS.app/Contents/Frameworks", "/Applications/QGIS.app/Contents/MacOS/QGIS",
         {"/Applications/QGIS.app/Contents/Frameworks/bin/python3"},
         "/Applications/QGIS.app/Contents/Frameworks/bin/python3"),
        ("linux", "/usr", "/usr/bin/qgis", {"/usr/bin/python3"}, "/usr/bin/python3"),
        ("linux", "/usr", "/usr/bin/python3.11", {"/usr/bin/python3.11"}, "/usr/bin/python3.11"),
    ],
)
def test_qgis_python_is_found_not_the_qgis_binary(platform, prefix, executable, present, expected):
    sep = "\\" if platform == "win32" else "/"

    def exists(path: str) -> bool:
        return path.replace("/", sep) in present if sep == "\\" else path in present

    found = deps.qgis_python(platform, prefix, executable, exists)
    assert found.replace("/", sep) == expected if sep == "\\" else found == expected


def test_install_command_picks_cuda_or_cpu_torch(tmp_path):
    missing = [deps.Missing("torch", "not installed"), deps.Missing("torchvision", "not installed")]
    cuda = deps.install_command(tmp_path, deps.packages_for(missing), python="py", cuda=True, platform="linux")
    cpu = deps.install_command(tmp_path, deps.packages_for(missing), python="py", cuda=False, platform="win32")
    assert cuda[:4] == ["py", "-m", "pip", "install"] and "--target" in cuda and str(tmp_path) in cuda
    assert deps.CUDA_INDEX in cuda and deps.CPU_INDEX not in cuda
    assert deps.CPU_INDEX in cpu and deps.CUDA_INDEX not in cpu
    assert "torch==2.14.1" in cpu and "torchvision==0.29.1" in cpu
    mac = deps.install_command(tmp_path, ["torch==2.14.1"], python="py", cuda=False, platform="darwin")
    assert "--extra-index-url" not in mac
    assert deps.shell_text(["a b", "c"]) == '"a b" c'


def test_nothing_missing_here():
    assert deps.missing_dependencies() == []


def test_torch_missing_gives_a_dialog_not_an_error(qgis_iface, monkeypatch):
    monkeypatch.setattr(deps, "missing_dependencies", lambda: [deps.Missing("torch", "not installed")])
    # nor onnxruntime: with it, a QGIS without torch is a deliberate predict-only install (test_plugin_onnx.py)
    monkeypatch.setattr(deps, "missing_for_prediction", lambda: [deps.Missing("onnxruntime", "not installed")])
    instance = geofm.classFactory(qgis_iface)
    instance.initGui()
    try:
        dialog = instance.deps_dialog
        assert dialog is not None and dialog.isVisible()
        assert "--target" in dialog.command_edit.text() and "torch==" in dialog.command_edit.text()
        assert "geofm-deps" in dialog.command_edit.text()
        dialog.hide()
        assert instance.open_train() is None and instance.open_predict() is None
        assert dialog.isVisible()  # the actions lead to the same dialog
    finally:
        instance.unload()


def test_plugin_loads_without_importing_the_engine_when_torch_is_missing():
    out = run_in_fresh_qgis(f"""
        sys.modules["torch"] = None  # torch cannot be imported, as on a fresh QGIS
        sys.modules["onnxruntime"] = None  # nor onnxruntime (with it, geofm starts in predict-only mode)
        sys.path.insert(0, {str(REPO.parent)!r})
        import geofm
        plugin = geofm.classFactory(iface)
        plugin.initGui()
        assert plugin.deps_dialog is not None and plugin.deps_dialog.isVisible()
        loaded = sorted(m for m in sys.modules if m.startswith("geofm.core") or m == "torchvision")
        print("LOADED", loaded)
        plugin.unload()
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout


def test_install_task_installs_into_the_target(tmp_path, qgis_iface):
    from geofm.geofm_qgis.deps_dialog import DependencyDialog

    target = tmp_path / "geofm-deps"
    dialog = DependencyDialog([deps.Missing("six", "not installed")], target)
    dialog.command = deps.install_command(target, ["six"], python=sys.executable)
    task = dialog.install()
    run_task_started(task)
    assert (target / "six.py").is_file(), dialog.output.toPlainText()
    assert "Successfully installed" in dialog.output.toPlainText()
    assert dialog.status.text().startswith("Installed")
    assert str(target) in sys.path
    sys.path.remove(str(target))


def run_task_started(task) -> None:
    """Wait for a task the code under test already added to the task manager."""
    from qgis_helpers import process_until

    ended = []
    task.ended.connect(ended.append)
    process_until(lambda: bool(ended), timeout=180)


