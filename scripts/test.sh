#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Ubuntu machine, then run the whole suite.
# Used verbatim by CI (.ci/run) and quoted in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # Qt + OpenGL under a virtual X display (napari's canvas needs real GL; offscreen Qt crashes vispy here)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 \
    libxcb-cursor0 libdbus-1-3 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
    libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 libfontconfig1 libxkbcommon0 >/dev/null
fi
# a virtual environment (Debian and Ubuntu refuse system-wide pip installs): the active one, else .venv
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -m venv .venv; then
  . .venv/bin/activate
fi
PY=$(command -v python || command -v python3)
"$PY" -m pip install -q torch==2.13.0           # CPU build on CI (its package index); install torch first
"$PY" -m pip install -q -e ".[testing]"
"$PY" -m pytest -q "$@"
