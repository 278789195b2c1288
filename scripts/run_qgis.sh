#!/usr/bin/env bash
# Start QGIS with the geofm plugin from this working tree, in a throw-away profile (your own profile is untouched).
# The profile's python/plugins/geofm is a symlink to the repository root and the plugin is enabled.
# Extra arguments go to qgis (e.g. a project file). Set GEOFM_PROFILE_DIR to keep the profile between runs.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${GEOFM_PROFILE_DIR:-$(mktemp -d -t geofm-qgis-XXXXXX)}"
PROFILE="$BASE/profiles/geofm-dev"
mkdir -p "$PROFILE/python/plugins" "$PROFILE/QGIS"
ln -sfn "$REPO" "$PROFILE/python/plugins/geofm"
INI="$PROFILE/QGIS/QGIS3.ini"
if ! grep -q '^geofm=true' "$INI" 2>/dev/null; then
  printf '[PythonPlugins]\ngeofm=true\n' >> "$INI"
fi
# The venv's torch (make setup) must be importable by QGIS's Python.
VENV_SITE="$(ls -d "$REPO"/.venv/lib/python3*/site-packages 2>/dev/null | head -n1 || true)"
export PYTHONPATH="${VENV_SITE:+$VENV_SITE:}${PYTHONPATH:-}"
echo "QGIS profile: $PROFILE (plugin: $PROFILE/python/plugins/geofm -> $REPO)"
exec qgis --profiles-path "$BASE" --profile geofm-dev "$@"
