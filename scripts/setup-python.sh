#!/usr/bin/env bash
# Create .venv and install the agent's Python dependencies from PyPI.
# llama-cpp-python compiles from source here (~5-10 min on 2 cores, once:
# pip caches the built wheel, so later fresh clones install it in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip wheel
echo "[setup] installing Python packages (llama-cpp-python builds from source the first time)" >&2
.venv/bin/pip install -q -e '.[dev]'
