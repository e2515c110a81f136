#!/usr/bin/env bash
# Build the course's website into _docs/ from the notebooks' saved outputs (it never runs them): bash docs/build.sh
# Jupyter Book 1 comes with the `docs` extra, installed into the active environment when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v jupyter-book >/dev/null || pip install -q -e ".[docs]"
rm -rf _proc/site _proc/_build _docs
python docs/prepare.py _proc/site
jupyter-book build _proc/site --path-output _proc --warningiserror --keep-going --quiet
mv _proc/_build/html _docs
echo "the course's website is in _docs/ (open _docs/index.html)"
