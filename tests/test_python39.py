"""QGIS 3.22–3.34 installers on Windows ship Python 3.9, and metadata.txt declares QGIS ≥ 3.22: the plugin's code must
run on Python 3.9. The syntax check runs everywhere; the import check wherever a Python 3.9 is installed."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([REPO / "__init__.py", *(REPO / "core").rglob("*.py"), *(REPO / "geofm_qgis").rglob("*.py")])


def _python39() -> str | None:
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))  # pyenv's shim may point elsewhere
    return str(pyenv[-1]) if pyenv else shutil.which("python3.9")


def _newer_than_39(path: Path) -> list[str]:
    """Constructs Python 3.9 cannot run: match, zip(strict=), X | Y outside annotations, annotations evaluated at
    definition time (no ``from __future__ import annotations``)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    annotation_nodes = {id(n) for node in ast.walk(tree) for a in ("annotation", "returns")
                        if getattr(node, a, None) is not None for n in ast.walk(getattr(node, a))}
    found = []
    has_annotations = any(isinstance(n, (ast.AnnAssign, ast.arg)) and n.annotation is not None or
                          isinstance(n, ast.FunctionDef) and n.returns is not None for n in ast.walk(tree))
    if has_annotations and "from __future__ import annotations" not in source:
        found.append("annotations without `from __future__ import annotations`")
    for node in ast.walk(tree):
        if type(node).__name__ == "Match":
            found.append(f"line {node.lineno}: match statement")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "zip" and node.keywords:
            found.append(f"line {node.lineno}: zip(strict=…)")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in annotation_nodes:
            text = ast.get_source_segment(source, node) or ""
            if any(isinstance(side, ast.Constant) and side.value is None for side in (node.left, node.right)) or (
                    _is_type_name(node.left) or _is_type_name(node.right)):
                found.append(f"line {node.lineno}: runtime union {text}")
    return found


def _is_type_name(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in {"int", "float", "str", "bool", "list", "dict", "tuple", "bytes"} or (
        name[:1].isupper() and not name.isupper() and not isinstance(node, ast.Attribute))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_plugin_source_runs_on_python39(path):
    assert _newer_than_39(path) == []


@pytest.mark.skipif(_python39() is None, reason="no Python 3.9 installed")
def test_python39_compiles_and_imports_the_torch_free_modules(tmp_path):
    (tmp_path / "geofm").symlink_to(REPO)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    code = ("import py_compile, sys\n"
            f"for f in {[str(p) for p in SOURCES]!r}: py_compile.compile(f, cfile=sys.argv[1] + '/x.pyc', doraise=True)\n"
            "import geofm.core.config, geofm.core.schema, geofm.core.cli_settings\n"
            "c = geofm.core.config.TrainConfig.from_dict({'images': ['a.tif'], 'labels': ['b.tif']})\n"
            "print(c.stride)\n")
    result = subprocess.run([_python39(), "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "64"
