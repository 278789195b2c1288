"""The dependency check: a clear dialog when torch is missing, the right interpreter and index, a working install."""

from __future__ import annotations

import os
import sys
import time
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
        ("win32", r"C:\Elsewhere", r"C:\OSGeo4W\bin\qgis-bin.exe",  # only QGIS's prefix leads to it
         {r"C:\OSGeo4W\bin\python3.exe"}, r"C:\OSGeo4W\bin\python3.exe"),
        ("darwin", "/Applications/QGIS.app/Contents/Frameworks", "/Applications/QGIS.app/Contents/MacOS/QGIS",
         {"/Applications/QGIS.app/Contents/Frameworks/bin/python3"},
         "/Applications/QGIS.app/Contents/Frameworks/bin/python3"),
        ("linux", "/usr", "/usr/bin/qgis", {"/usr/bin/python3", "/usr/bin/qgis"}, "/usr/bin/python3"),
        ("linux", "/usr", "/usr/bin/python3.11", {"/usr/bin/python3.11"}, "/usr/bin/python3.11"),
        ("linux", "/usr", "/usr/bin/qgis", {"/usr/bin/qgis"}, None),  # never QGIS itself: it would open a window
    ],
)
def test_qgis_python_is_found_not_the_qgis_binary(platform, prefix, executable, present, expected):
    def exists(path: str) -> bool:
        return path in present

    def same_version(path: str):
        assert "qgis" not in path.lower().rsplit("\\", 1)[-1].rsplit("/", 1)[-1], "ran the QGIS binary"
        return tuple(sys.version_info[:2])

    found = deps.qgis_python(platform, prefix, executable, exists, same_version, base_executable="",
                             qgis_prefix=r"C:\OSGeo4W\apps\qgis" if platform == "win32" else "")
    assert found == expected


def test_a_python_of_another_version_is_not_taken():
    """A python3 on the PATH or beside QGIS that is not QGIS's version would install packages QGIS cannot load."""
    present = {"/usr/bin/python3", "/usr/bin/python3.8"}
    found = deps.qgis_python("linux", "/usr", "/usr/bin/qgis", present.__contains__, lambda path: (3, 8),
                             base_executable="", qgis_prefix="")
    assert found is None
    # and the real check runs the interpreter: this test's own Python is the right one
    assert deps.qgis_python(exists=lambda p: p == sys.executable, executable=sys.executable) == sys.executable


def test_install_commands_take_cpu_torch_from_pytorch_and_fail_fast(tmp_path):
    missing = [deps.Missing("torch", "not installed"), deps.Missing("torchvision", "not installed"),
               deps.Missing("rasterio", "not installed")]
    packages = deps.packages_for(missing)
    cpu = deps.install_commands(tmp_path, packages, python="py", platform="win32")
    cuda = deps.install_commands(tmp_path, packages, python="py", cuda=True, platform="linux")
    torch_step, rest_step = cpu
    assert torch_step[:4] == ["py", "-m", "pip", "install"] and str(tmp_path) in torch_step
    assert torch_step[torch_step.index("--index-url") + 1] == deps.CPU_INDEX
    assert "torch==2.14.1" in torch_step and "torchvision==0.29.1" in torch_step and "rasterio>=1.3" in rest_step
    assert "--index-url" not in rest_step  # rasterio is not on PyTorch's index
    for step in cpu:
        assert step[step.index("--retries") + 1] == "2" and step[step.index("--timeout") + 1] == "30"
    assert cuda[0][cuda[0].index("--index-url") + 1] == deps.CUDA_INDEX
    mac = deps.install_commands(tmp_path, ["torch==2.14.1"], python="py", platform="darwin")
    assert "--index-url" not in mac[0]
    assert deps.shell_text([["a b", "c"], ["d"]]) == '"a b" c && d'
    assert deps.install_commands(tmp_path, ["six"], python=None)[0][0] == "python3"  # a placeholder to edit


def test_size_shown_before_installing_matches_the_measured_wheels(qgis_iface, tmp_path):
    from geofm.geofm_qgis.deps_dialog import DependencyDialog

    dialog = DependencyDialog([deps.Missing("torch", "not installed")], tmp_path / "geofm-deps")
    assert "about 220 MB to download" in dialog.size_label.text() and "CPU" in dialog.size_label.text()
    assert deps.CPU_INDEX in dialog.command_edit.text()
    dialog.cuda_box.setChecked(True)
    assert "about 3.1 GB to download" in dialog.size_label.text()
    assert deps.CUDA_INDEX in dialog.command_edit.text()


def test_no_qgis_python_found_is_said_and_install_is_off(qgis_iface, tmp_path, monkeypatch):
    from geofm.geofm_qgis.deps_dialog import DependencyDialog

    monkeypatch.setattr(deps, "qgis_python", lambda: None)
    dialog = DependencyDialog([deps.Missing("torch", "not installed")], tmp_path / "geofm-deps")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"could not find QGIS's own Python {version}" in dialog.python_label.text()
    assert not dialog.install_button.isEnabled()
    assert dialog.command_edit.text().startswith("python3 -m pip install")  # still offered to copy


@pytest.mark.parametrize(("line", "said"), [
    ("Collecting torch==2.14.1", "Looking up torch==2.14.1…"),
    ("  Downloading https://download.pytorch.org/whl/cpu/torch-2.14.1%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl "
     "(191.8 MB)", "Downloading torch 2.14.1+cpu (191.8 MB)…"),
    ("  Downloading torchvision-0.29.1-cp311-cp311-win_amd64.whl (1.9 MB)", "Downloading torchvision 0.29.1 (1.9 MB)…"),
    ("Installing collected packages: mpmath, sympy, torch", "Installing mpmath, sympy, torch… (unpacking can take "
                                                            "a few minutes)"),
    ("Successfully installed six-1.17.0", "Installed six-1.17.0."),
    ("     |████████████▌                   | 71.3 MB 2.1 MB/s eta 0:01:02", None),
])
def test_pip_lines_become_plain_progress(line, said):
    from geofm.geofm_qgis.pip_output import progress_text

    assert progress_text(line) == said


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
        assert "pip's output" in dialog.details.title() and dialog.details.isCollapsed()
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
    dialog.python = sys.executable
    task = dialog.install(["six"])
    run_task_started(task)
    assert (target / "six.py").is_file(), dialog.output.toPlainText()
    assert "Successfully installed" in dialog.output.toPlainText()
    assert dialog.status.text().startswith("Installed")
    assert not deps.staging_dir(target).exists()
    assert str(target) in sys.path
    sys.path.remove(str(target))


FAKE_PIP = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
print("Collecting torch==2.14.1", flush=True)
print("  Downloading torch-2.14.1-cp311-cp311-win_amd64.whl (191.8 MB)", flush=True)
os.makedirs(os.path.join(sys.argv[2], "torch"))  # what pip had unpacked so far
time.sleep(120)
print("Successfully installed torch-2.14.1", flush=True)
"""


def test_cancel_kills_pip_and_installs_nothing(tmp_path, qgis_iface):
    from qgis.core import QgsApplication

    from geofm.geofm_qgis.deps_dialog import DependencyDialog
    from geofm.geofm_qgis.install_task import PipTask

    from qgis_helpers import process_until

    target = tmp_path / "geofm-deps"
    staging = deps.staging_dir(target)
    fake, pid_file = tmp_path / "slow_pip.py", tmp_path / "pid"
    fake.write_text(FAKE_PIP)
    dialog = DependencyDialog([deps.Missing("torch", "not installed")], target)
    task = PipTask([[sys.executable, str(fake), str(pid_file), str(staging)]], staging, target)
    task.progress.connect(dialog.status.setText)
    task.ended.connect(dialog._ended)
    dialog.task = task
    QgsApplication.taskManager().addTask(task)
    process_until(lambda: dialog.status.text().startswith("Downloading"), timeout=60)
    assert dialog.status.text() == "Downloading torch 2.14.1 (191.8 MB)…"
    pid = int(pid_file.read_text())
    started = time.monotonic()
    dialog.cancel()
    run_task_started(task)
    assert time.monotonic() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the pip process is gone (and reaped), not left downloading
    assert dialog.status.text().startswith("Cancelled: nothing was installed")
    assert not target.exists() or not any(target.iterdir())
    assert not staging.exists()
    assert str(target) not in sys.path


def test_offline_install_fails_in_seconds_with_a_clear_message(tmp_path):
    """Real pip with the installer's options against a server that refuses connections (as offline)."""
    import subprocess

    from geofm.geofm_qgis.pip_output import failure_text

    command = deps.install_commands(tmp_path / "t", ["six"], python=sys.executable)[0]
    command += ["--index-url", "http://127.0.0.1:9/simple"]  # nothing listens on port 9: refused, nothing downloaded
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no local mirror from this machine's pip configuration
    started = time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0 and time.monotonic() - started < 30
    message = failure_text((out.stdout + out.stderr).splitlines(), out.returncode)
    assert message.startswith("The package server (download.pytorch.org or pypi.org) could not be reached")
    assert "offline" in message


def run_task_started(task) -> None:
    """Wait for a task the code under test already added to the task manager."""
    from qgis_helpers import process_until

    ended = []
    task.ended.connect(ended.append)
    process_until(lambda: bool(ended), timeout=180)
