#!/usr/bin/env bash
# One full-scale training run on this machine's CPU, in the background, resumably, on one thread (two runs side by
# side use both cores; see the brief's "Long runs"). Run it again at the start of a session: it resumes.
#
#     bash experiments/train_background.sh wiener-skipcae-blur --arch wiener-skipcae --eight-bit --paper \
#         --epochs 6 --schedule onecycle --lr 3e-4
#     tail -c 300 ~/.cache/cae_course/runs/wiener-skipcae-blur/log.txt    # progress
#     pkill -f 'runs/wiener-skipcae-blur'                                 # stop: it saves, and resumes there
#     bash experiments/train_background.sh --park wiener-skipcae-blur      # end of a session: then commit runs-parked/
#
# The run folder is ~/.cache/cae_course/runs/NAME (outside the work tree); the library it imports is a frozen copy
# of the committed HEAD (~/.cache/cae_course/code-NAME), so editing notebooks while it trains cannot change it.
# A session may start on a fresh machine with an empty ~/.cache: `--park NAME` copies the run's last checkpoint into
# runs-parked/train/NAME/ (commit it), and a start without a checkpoint of its own resumes from the parked one.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$1" = "--park" ]; then
  mkdir -p "$REPO/runs-parked/train/$2" && cp "$HOME/.cache/cae_course/runs/$2/checkpoint.pt" "$REPO/runs-parked/train/$2/"
  echo "parked $2 in runs-parked/train/$2 (commit it)"; exit 0
fi
NAME="$1"; shift
RUN="$HOME/.cache/cae_course/runs/$NAME"
CODE="$HOME/.cache/cae_course/code-$NAME"
PARKED="$REPO/runs-parked/train/$NAME"
if pgrep -f "runs/$NAME( |$)" >/dev/null; then echo "already running (pid $(pgrep -f "runs/$NAME( |$)"))"; exit 0; fi
mkdir -p "$RUN"
if [ ! -e "$RUN/checkpoint.pt" ] && [ -e "$PARKED/checkpoint.pt" ]; then cp "$PARKED/checkpoint.pt" "$RUN/"; fi
rm -rf "$CODE" && mkdir -p "$CODE" && git -C "$REPO" archive HEAD cae_course | tar -x -C "$CODE"
. "$REPO/.venv/bin/activate"
export PYTHONPATH="$CODE" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export CAE_COURSE_LFW="${CAE_COURSE_LFW:-$REPO/../shared/data/lfw-deepfunneled.tgz}"
cd "$HOME"  # not the repo: its cae_course/ must not shadow the frozen copy
echo "== $(date -u +%FT%TZ) start $(git -C "$REPO" rev-parse --short HEAD) $*" >> "$RUN/log.txt"
RESUME=(); [ -e "$RUN/checkpoint.pt" ] && RESUME=(--resume)
nohup python -m cae_course.cli train "$@" --out "$RUN" "${RESUME[@]}" >> "$RUN/log.txt" 2>&1 &
echo "started pid $! (log: $RUN/log.txt)"
