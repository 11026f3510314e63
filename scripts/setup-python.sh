#!/usr/bin/env bash
# Create .venv and install the agent's Python dependencies from PyPI.
# llama-cpp-python compiles from source here (~5-10 min on 2 cores, once:
# pip caches the built wheel, so later fresh clones install it in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip wheel
echo "[setup] installing Python packages (llama-cpp-python builds from source the first time)" >&2
# llama.cpp is built for this CPU (-march=native) but without its AMX kernels: on Xeons with
# AMX they crash the first multi-token decode (ggml-org/llama.cpp#20824). Explicit -mno-amx-*
# flags win over what -march=native implies, so the same build is right on every CPU.
no_amx=""
[ "$(uname -m)" = x86_64 ] && no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CFLAGS="${CFLAGS:-} $no_amx" CXXFLAGS="${CXXFLAGS:-} $no_amx" .venv/bin/pip install -q -e '.[dev]'
