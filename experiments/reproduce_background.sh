#!/usr/bin/env bash
# The paper-scale reproduction on this machine's CPU, in the background, resumably (issue "Run the paper's eight
# experiments at full scale on the CPU"). Run it at the start of every working session:
#
#     bash experiments/reproduce_background.sh            # (re)start: continues from the last checkpoint
#     bash experiments/reproduce_background.sh --only cae-pixel-blur
#     tail -c 400 ~/.cache/cae_course/reproduce/log.txt   # progress
#     kill $(pgrep -f 'cae_course.cli reproduce')           # stop: it saves the current step, and resumes there
#     python experiments/park_runs.py park                   # end of a session: then commit runs-parked/
#
# Results and checkpoints live outside the work tree (~/.cache/cae_course/reproduce/{results,work}) so that no
# checkout can remove them. Each finished run's model is packed into this checkout's cae_course/weights/ at once;
# experiments/collect_runs.py then copies its results/<name>/ into the repo (chapter 09c).
# A session may start on a fresh machine with an empty ~/.cache: the runs parked in the repository at the end of the
# last session (experiments/park_runs.py park, committed) are put back first, so they resume instead of starting over.
# The run imports a frozen copy of the library (~/.cache/cae_course/code, taken from the committed HEAD when the
# script starts) so that editing the notebooks while it trains cannot break it or change it half-way.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
R="${CAE_COURSE_REPRODUCE:-$HOME/.cache/cae_course/reproduce}"
CODE="$HOME/.cache/cae_course/code"
if pgrep -f "cae_course.cli reproduce" >/dev/null; then echo "already running (pid $(pgrep -f 'cae_course.cli reproduce'))"; exit 0; fi
mkdir -p "$R"
rm -rf "$CODE" && mkdir -p "$CODE" && git -C "$REPO" archive HEAD cae_course | tar -x -C "$CODE"
. "$REPO/.venv/bin/activate"
python "$REPO/experiments/park_runs.py" unpark --from "$R"
export PYTHONPATH="$CODE"
export CAE_COURSE_LFW="${CAE_COURSE_LFW:-$REPO/../shared/data/lfw-deepfunneled.tgz}"
export CAE_COURSE_VGG16="${CAE_COURSE_VGG16:-$REPO/../shared/weights/vgg16_features.pth}"
cd "$HOME"  # not the repo: its cae_course/ must not shadow the frozen copy
echo "== $(date -u +%FT%TZ) start $(git -C "$REPO" rev-parse --short HEAD) $*" >> "$R/log.txt"
nohup python -m cae_course.cli reproduce --scale full --out "$R/results" --work "$R/work" \
  --pack-into "$REPO/cae_course/weights" "$@" >> "$R/log.txt" 2>&1 &
echo "started pid $! (log: $R/log.txt)"
