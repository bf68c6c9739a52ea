#!/bin/bash
# Copy the working tree as it is (committed or not) to DEST, without local
# caches, virtualenvs and build leftovers: what the package stages build from.
set -euo pipefail
dest=${1:?usage: export-tree.sh DEST}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest"
tar -C "$repo" -cf - --exclude=./.git --exclude='./.venv*' --exclude=.mypy_cache \
    --exclude=.ruff_cache --exclude=.pytest_cache --exclude=__pycache__ \
    --exclude='*.egg-info' --exclude=./build --exclude=./dist --exclude=./.pybuild \
    --exclude=./debian/.debhelper --exclude=./debian/kubemeta . | tar -C "$dest" -xf -
