"""Training beside another busy program: images/s of the paper's CAE (pixel loss, batch 8, 112×112, the engine's
`train_epoch`) on an idle machine and beside one busy single-threaded program at the lowest priority (`nice 19`),
started in a session of its own as another program is (Linux's autogroups share the CPU between sessions first, so
its `nice 19` does not make it yield to the training: this is how the default collapses beside a browser).

Each configuration runs in a fresh process, since OpenMP reads its settings when PyTorch starts:
- `default_threads`: PyTorch's own thread count, fixed (`CAE_COURSE_THREADS=fixed`): what the course did before;
- `one_thread`: `OMP_NUM_THREADS=1`;
- `passive_wait`: the default threads with `OMP_WAIT_POLICY=PASSIVE` (waiting threads sleep instead of spinning);
- `engine`: the course's choice, `cae_course.cores.use_free_cores` as `train_epoch` calls it.

Targets (2 cores): beside the busy program, the engine ≥ 0.9× one thread; on the idle machine, the engine ≥ 0.95×
the default threads (no loss, within the noise of a shared machine).

--shield (root, Linux): on a machine shared with other sessions' work, give this benchmark's session and its busy
program's session the highest autogroup priority (nice −20, equal to each other), so that the others' load does not
count. The engine then still sees the others' threads waiting and leaves them cores: use --shield for the `busy`
rows, and an idle machine for the `idle` rows.

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_busy.py [--steps 16] [--repeats 3] [--shield]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import save_result

WORKER = r"""
import json, sys, time
import torch
from cae_course.config import TrainConfig
from cae_course.data import center_crop, load_lfw
from cae_course.train import EpochProgress, build_loss, build_model, train_epoch

steps, warmup = int(sys.argv[1]), int(sys.argv[2])
cfg = TrainConfig()  # the paper's configuration
faces = center_crop(load_lfw(progress=False).images[:(steps + warmup) * cfg.batch_size], cfg.image_size).contiguous()
torch.manual_seed(0)
model = build_model(cfg, "cpu")
opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
loss_fn = build_loss(cfg, "cpu")
run = lambda images: train_epoch(model, opt, loss_fn, images, cfg, EpochProgress(1), show_progress=False)
run(faces[:warmup * cfg.batch_size])
start = time.perf_counter()
run(faces[warmup * cfg.batch_size:])
seconds = time.perf_counter() - start
print(json.dumps({"images_per_s": round(steps * cfg.batch_size / seconds, 2), "threads": torch.get_num_threads()}))
"""

POLICIES = {  # environment of each configuration
    "default_threads": {"CAE_COURSE_THREADS": "fixed"},
    "one_thread": {"OMP_NUM_THREADS": "1"},
    "passive_wait": {"CAE_COURSE_THREADS": "fixed", "OMP_WAIT_POLICY": "PASSIVE"},
    "engine": {},
}


def train_rate(
    env: dict,  # environment variables to set
    steps: int,  # timed steps
    warmup: int,  # untimed steps before
) -> dict:
    "images/s and threads of the worker in a fresh process with `env`."
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "CAE_COURSE_THREADS")}
    out = subprocess.run([sys.executable, "-c", WORKER, str(steps), str(warmup)], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def busy_program(
    shield: bool,  # give its session the highest autogroup priority (see --shield)
) -> subprocess.Popen:
    "A busy single-threaded program at nice 19, in a session of its own."
    priority = "echo -20 > /proc/self/autogroup; " if shield else ""
    return subprocess.Popen(["setsid", "sh", "-c", f'{priority}exec nice -n 19 "{sys.executable}" -c "while True: pass"'])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=16, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before")
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration (the median is reported)")
    p.add_argument("--shield", action="store_true", help="highest autogroup priority for this benchmark (see above)")
    args = p.parse_args()
    if args.shield:
        Path("/proc/self/autogroup").write_text("-20")
    runs, threads, loads = {}, {}, {}
    for beside in ("idle", "busy"):
        spinner = busy_program(args.shield) if beside == "busy" else None
        time.sleep(1)
        try:
            for _ in range(args.repeats):  # the configurations in turn, so that a slow spell of the machine hits them all
                for name, env in POLICIES.items():
                    key = f"{beside}: {name}"
                    loads.setdefault(key, []).append(round(os.getloadavg()[0], 2))
                    r = train_rate(env, args.steps, args.warmup)
                    runs.setdefault(key, []).append(r["images_per_s"])
                    threads[key] = r["threads"]
                    print(f"{key:<26} {r['images_per_s']:6.2f} images/s with {r['threads']} thread(s)", flush=True)
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
    rates = {key: round(statistics.median(r), 2) for key, r in runs.items()}
    reached = {"busy: engine / one_thread": round(rates["busy: engine"] / rates["busy: one_thread"], 2),
               "idle: engine / default_threads": round(rates["idle: engine"] / rates["idle: default_threads"], 2),
               "busy: engine / default_threads": round(rates["busy: engine"] / rates["busy: default_threads"], 2)}
    save_result("busy_cpu", {
        "what": "images/s of the paper's CAE (pixel loss, batch 8, 112x112) idle and beside one busy nice-19 process (median of the repeats)",
        "steps": args.steps, "repeats": args.repeats, "shield": args.shield, "images_per_s": rates, "runs": runs,
        "threads_at_end": threads, "load_average_1min_before": loads,
        "targets": {"busy: engine / one_thread": 0.9, "idle: engine / default_threads": 0.95}, "reached": reached})


if __name__ == "__main__":
    main()
