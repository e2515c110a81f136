"""The Python steps of `benchmarks/gpu_check.sh` (its header says what the check is): the playground's training path
for a minute, one epoch of the paper's CAE, and the summary, which also turns the GPU tests' JUnit XML into a record.

Each step writes <name>_<device>.json into --out with `common.save_result` (command, machine, GPU, date) and exits 1
when its check fails. The device is CUDA; with --dry-run it is the CPU and the sizes are tiny (`DRY_RUN`), so that
CI can afford the whole script.

Usage: python benchmarks/gpu_check.py {playground,epoch,summary} --out DIR [--dry-run] [options]
"""
import argparse
import dataclasses
import math
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from common import save_result

from cae_course.data import SCALES, load_lfw, split_sizes
from cae_course.train import TrainConfig, fit

DRY_RUN = {  # what a --dry-run changes, on the CPU
    "playground": dict(n_train=32, n_valid=16, epochs=2),  # the CPU playground's run, 2 epochs of 8 steps: it ends itself
    "epoch": dict(n_train=64, n_valid=32, image_size=48),  # the paper's CAE and batch size, 8 steps on 48-px crops
}
VALID_KEYS = ("valid_psnr", "valid_ssim", "valid_input_psnr", "valid_input_ssim")


def rounded(
    row: dict,  # a history row of `fit`
) -> dict:
    "Its validation scores, rounded."
    return {k: round(row[k], 4) for k in VALID_KEYS}


def playground_step(
    device: str,  # "cuda", or "cpu" for a dry run
    dry_run: bool,  # the CPU playground's run on a few faces (`DRY_RUN`), not required to pass its input
    seconds: float,  # how long to train before pressing Stop
) -> dict:
    """Press Train on the playground (its own settings on `device`: the full scale on a GPU), press Stop after
    `seconds` unless the run has ended: the validation PSNR of each epoch, and when the reconstruction passed the
    obfuscated input."""
    from cae_course.playground import Playground, playground_config  # ipywidgets: only this step needs it

    config = playground_config(SCALES["quick"], **DRY_RUN["playground"]) if dry_run else None
    pg = Playground(load_lfw(progress=False), device=device, config=config)  # None: what the notebook's button trains
    curve, drawing = [], [0.0]
    on_step, on_epoch = pg.on_step, pg.on_epoch

    def timed_step(step, loss):  # the training thread redraws the loss curve here
        start = time.perf_counter()
        on_step(step, loss)
        drawing[0] += time.perf_counter() - start

    def noted_epoch(row, run):  # the metrics line shows the epoch's scores once this returns
        on_epoch(row, run)
        curve.append({"epoch": row["epoch"], "seconds_after_train": round(time.monotonic() - pg.started, 2),
                      **rounded(row), "epoch_seconds": round(row["seconds"], 2), "precision": row["precision"]})

    pg.on_step, pg.on_epoch = timed_step, noted_epoch  # `Playground.train` hands these to `fit`
    pg.start()  # what the Train button does
    pg.thread.join(timeout=seconds)
    if pg.thread.is_alive():
        pg.stop()  # what the Stop button does
        pg.thread.join()
    ahead = next((r for r in curve if r["valid_psnr"] > r["valid_input_psnr"]), None)
    ran = bool(curve) and all(math.isfinite(r["valid_psnr"]) for r in curve) and "error" not in pg.status.value
    return {"device": device, "dry_run": dry_run, "config": dataclasses.asdict(pg.config), "seconds_allowed": seconds,
            "status": pg.status.value, "psnr_curve": curve, "ahead_of_input": ahead,
            "seconds_drawing_loss_curve": round(drawing[0], 2),
            "criterion": ("every epoch's scores finite, no error" if dry_run else
                          f"the reconstruction's validation PSNR passes the obfuscated input's within {seconds:g} s"),
            "passed": ran and (dry_run or (ahead is not None and ahead["seconds_after_train"] <= seconds))}


def epoch_step(
    device: str,  # "cuda", or "cpu" for a dry run
    dry_run: bool,  # a tiny epoch (`DRY_RUN["epoch"]`) instead of the paper's
) -> dict:
    "One epoch of the paper's CAE (`TrainConfig()`: 7,620 faces, 112 px, batch 8) through `fit`: speed, time, scores."
    cfg = TrainConfig(epochs=1, **(DRY_RUN["epoch"] if dry_run else {}))
    faces = load_lfw(progress=False)
    n_train = min(cfg.n_train or len(faces), split_sizes(len(faces))[0])
    reports = []  # when `fit` reported the running loss; the last report closes the epoch's last step
    start = time.perf_counter()
    run = fit(cfg, faces, device=device, progress=False, on_step=lambda step, loss: reports.append(time.perf_counter()))
    wall = time.perf_counter() - start
    row = run.history[-1]
    train = reports[-1] - start  # it reads the loss, so the device has finished the epoch's steps by then
    return {"device": device, "dry_run": dry_run, "config": dataclasses.asdict(cfg), "train_faces": n_train,
            "images_per_s": round(n_train / train, 1), "train_seconds": round(train, 2), "wall_seconds": round(wall, 2),
            "timing": "train: from calling fit (faces to the device, model built) to the end of the last step; "
                      "wall: the whole fit call, validation included",
            "valid": rounded(row), "engine_mode": {k: row[k] for k in ("device", "precision", "channels_last")},
            "passed": all(math.isfinite(row[k]) for k in VALID_KEYS)}


def test_record(
    junit: Path,  # pytest's --junitxml file
    exit_code: int,  # pytest's exit status
    dry_run: bool,  # on a CPU every GPU test skips; on the GPU none may
) -> dict:
    "The GPU tests' outcomes, read from pytest's JUnit XML."
    cases = []
    for case in (ET.parse(junit).getroot().iter("testcase") if junit.exists() else ()):
        outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}",
                      "outcome": "passed" if outcome is None else outcome.tag,
                      **({"message": outcome.get("message", "")[:300]} if outcome is not None else {})})
    count = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "failure", "error", "skipped")}
    return {"device": "cpu" if dry_run else "cuda", "dry_run": dry_run, "pytest_exit_code": exit_code,
            "selection": "pytest -m gpu (tests marked gpu: they skip without CUDA)", "count": count, "cases": cases,
            "criterion": "pytest exits 0 with at least one test" + ("" if dry_run else ", none skipped"),
            "passed": exit_code == 0 and bool(cases) and (dry_run or count["skipped"] == 0)}


def summary(
    steps: Path,  # the script's record: one line per step, "name <tab> exit status <tab> seconds <tab> budget"
    junit: Path,  # the GPU tests' JUnit XML
    out: Path,  # where the step records are
    dry_run: bool,
) -> dict:
    "Every step's exit status and time (a step passed if it exited 0); writes the GPU tests' record too."
    device = "cpu" if dry_run else "cuda"
    rows = []
    for line in steps.read_text().splitlines():
        name, *numbers = line.split("\t")
        code, seconds, budget = map(int, numbers)
        rows.append({"step": name, "exit_code": code, "seconds": seconds, "budget_seconds": budget,
                     "timed_out": code in (124, 137), "passed": code == 0})
    for r in rows:
        if r["step"] == "gpu_tests":  # pytest exits 0 when every test skips: its record says whether that is right
            tests = test_record(junit, r["exit_code"], dry_run)
            save_result(f"gpu_tests_{device}", tests, out, show=False)
            r["passed"] = tests["passed"]
    return {"device": device, "dry_run": dry_run, "steps": rows, "passed": bool(rows) and all(r["passed"] for r in rows)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["playground", "epoch", "summary"])
    p.add_argument("--out", type=Path, required=True, help="folder for the records")
    p.add_argument("--dry-run", action="store_true", help="on the CPU, tiny")
    p.add_argument("--seconds", type=float, default=60, help="playground: seconds of training before Stop")
    p.add_argument("--steps", type=Path, help="summary: the script's step record")
    p.add_argument("--junit", type=Path, help="summary: the GPU tests' JUnit XML")
    args = p.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if args.step == "playground":
        name, result = "playground", playground_step(device, args.dry_run, args.seconds)
    elif args.step == "epoch":
        name, result = "paper_epoch", epoch_step(device, args.dry_run)
    else:
        name, result = "gpu_check", summary(args.steps, args.junit, args.out, args.dry_run)
    save_result(f"{name}_{device}", result, args.out)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
