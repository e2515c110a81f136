#!/usr/bin/env bash
# The GPU check (issue 24): everything of the course that needs CUDA, in ONE call of at most 8 minutes.
#
# Steps, each with a time budget (`timeout`); a step that fails or runs out of time is recorded and the next runs:
#   setup       ≤ 60 s   the Python packages (see "Packages" below)
#   gpu_tests   ≤ 90 s   pytest -m gpu: the tests marked `gpu` (they skip without CUDA); here none may skip
#   bench_train ≤ 90 s   bench_train.py --device cuda: a plain step against the engine, pixel and mixed loss, images/s
#   playground  ≤ 110 s  the playground's Train button with its own settings (the full scale on a GPU), Stop after
#                        60 s: the reconstruction's validation PSNR must pass the obfuscated input's within the 60 s
#   paper_epoch ≤ 90 s   one epoch of the paper's CAE at full scale (`TrainConfig()`: 7,620 faces, 112 px, batch 8)
#                        through `fit`: images/s, wall time, validation PSNR/SSIM
#   summary     ≤ 30 s   every step's exit status and time
# It writes benchmarks/results/{gpu_tests,train,playground,paper_epoch,gpu_check}_cuda.json (each with the command,
# the machine, the GPU's name and the date), copies them and its log to $OUT when $OUT is set (the device tool
# brings back what lies there), and exits 0 only if every step passed.
#
# On a GPU machine, from the repo root (the device tool: timeout_s 540):   bash benchmarks/gpu_check.sh
#   Data: $CAE_COURSE_LFW (the LFW archive) and $CAE_COURSE_VGG16 (vgg16().features; vgg16_relu2_2.pth serves every
#   step but the LPIPS test), else ../shared/{data,weights}/ as in .ci/run. A copy carried in parts (a call's tree
#   has a size limit) is joined first: cat PARTS >/tmp/lfw.tgz && CAE_COURSE_LFW=/tmp/lfw.tgz bash benchmarks/gpu_check.sh
#   Packages: a python3 with torch; cae_course is imported from this checkout. If an import is missing (a bare GPU
#   image lacks ipywidgets and lpips), the wheels in .whl/ are installed (make them here, where PyPI is reachable,
#   with `bash benchmarks/gpu_check.sh --fetch-wheels`, and carry .whl), else a .venv over the system's packages
#   gets `pip install -e ".[dev]"`, which needs PyPI (often unreachable from a GPU machine).
#
# Dry run (CI runs it through tests/test_gpu_check.py):   bash benchmarks/gpu_check.sh --dry-run [--out DIR]
#   The same steps on the CPU, tiny (a few steps at 32-48 px, 32-64 faces; the playground's CPU run for 2 epochs,
#   not required to pass its input), about a minute on 2 cores. It writes *_cpu.json into DIR (default: a new
#   temporary folder), never into benchmarks/results.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0 out="" fetch_wheels=0
while (($#)); do
  case $1 in
    --dry-run) dry_run=1 ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    --fetch-wheels) fetch_wheels=1 ;;
    -h|--help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# The packages a bare GPU image lacks (pure-Python wheels), pinned to the versions installed here.
WHEELS="lpips ipywidgets comm traitlets widgetsnbextension jupyterlab_widgets ipython ipython_pygments_lexers jedi parso
        matplotlib_inline pexpect ptyprocess prompt_toolkit wcwidth stack_data executing asttokens pure_eval"
if ((fetch_wheels)); then
  pins=$(python3 -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $WHEELS) || exit 1
  exec python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py -d .whl $pins
fi

if ((dry_run)); then
  device=cpu out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
  mkdir -p "$out"
  if [ "$(realpath "$out")" = "$(realpath benchmarks/results)" ]; then
    echo "a dry run does not write into benchmarks/results: give another --out" >&2; exit 2
  fi
  budgets=(60 90 90 75 60) bench=(--steps 1 --warmup 1 --image-size 32) seconds=45 total=320
else
  device=cuda out=${out:-benchmarks/results} budgets=(60 90 90 110 90) bench=(--steps 100 --warmup 10) seconds=60 total=440
fi
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_work.XXXXXX")  # step record, test XML, log, installed wheels
log=$work/gpu_check.log steps=$work/steps.tsv
: >"$steps"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # cae_course from this checkout
export CAE_COURSE_LFW="${CAE_COURSE_LFW:-$PWD/../shared/data/lfw-deepfunneled.tgz}"
export CAE_COURSE_VGG16="${CAE_COURSE_VGG16:-$PWD/../shared/weights/vgg16_features.pth}"
for f in "$CAE_COURSE_LFW" "$CAE_COURSE_VGG16"; do
  [ -e "$f" ] || echo "warning: $f is missing (the course then looks in its cache, then downloads)" | tee -a "$log"
done
deadline=$((SECONDS + total))

record() {  # name exit-status start budget: one line of the step record, and the log's
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" $((SECONDS - $3)) "$4" >>"$steps"
  echo "=== $1: exit status $2 after $((SECONDS - $3)) s" | tee -a "$log"
}

step() {  # name budget command...: run the command within min(budget, time left), logged and recorded
  local name=$1 budget=$2 start=$SECONDS code=124
  shift 2
  ((budget > deadline - SECONDS)) && budget=$((deadline - SECONDS))
  echo "=== $name (at most $budget s): $*" | tee -a "$log"
  if ((budget > 0)); then
    timeout --kill-after=10 "$budget" "$@" 2>&1 | tee -a "$log"
    code=${PIPESTATUS[0]}
  fi
  record "$name" "$code" "$start" "$budget"
}

setup() {  # the imports of every step; where one is missing (not in a dry run): the carried wheels, else PyPI
  local imports="import torch, cae_course.train, cae_course.playground, cae_course.lpips_metric, lpips, pytest, scipy, skimage"
  python3 -c "$imports" && return 0
  ((dry_run)) && return 1
  if compgen -G ".whl/*.whl" >/dev/null; then
    timeout "${budgets[0]}" python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .whl/*.whl &&
      export PYTHONPATH="$work/site:$PYTHONPATH"
  else
    echo "installing with pip from PyPI into .venv (over the system's packages); PyPI may be unreachable from here"
    { [ -d .venv ] || python3 -m venv --system-site-packages .venv; } &&
      timeout "${budgets[0]}" .venv/bin/python -m pip install -q --retries 1 --timeout 15 -e ".[dev]" &&
      export PATH="$PWD/.venv/bin:$PATH"
  fi
  python3 -c "$imports"
}
start=$SECONDS
echo "=== setup (imports; installs take at most ${budgets[0]} s)" | tee -a "$log"
setup > >(tee -a "$log") 2>&1
record setup $? "$start" "${budgets[0]}"

step gpu_tests "${budgets[1]}" python3 -m pytest -m gpu -rs -p no:cacheprovider --junitxml="$work/gpu_tests.xml" \
  $(grep -l "pytest.mark.gpu" tests/test_*.py || echo tests)
step bench_train "${budgets[2]}" python3 benchmarks/bench_train.py --device "$device" "${bench[@]}" --out "$out"
flag=$( ((dry_run)) && echo --dry-run)
step playground "${budgets[3]}" python3 benchmarks/gpu_check.py playground --seconds "$seconds" --out "$out" $flag
step paper_epoch "${budgets[4]}" python3 benchmarks/gpu_check.py epoch --out "$out" $flag

echo "=== summary" | tee -a "$log"
timeout 30 python3 benchmarks/gpu_check.py summary --steps "$steps" --junit "$work/gpu_tests.xml" --out "$out" $flag \
  2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
((status)) && { echo "the GPU check FAILED (exit status $status); steps (name, exit status, s, budget):"; cat "$steps"; }
if [ -n "${OUT:-}" ]; then
  for name in gpu_tests train playground paper_epoch gpu_check; do
    [ -f "$out/${name}_$device.json" ] && cp "$out/${name}_$device.json" "$OUT/"
  done
  cp "$log" "$OUT/"
fi
echo "records in $out, log in $log"
exit "$status"
