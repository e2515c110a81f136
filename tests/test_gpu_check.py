"""`benchmarks/gpu_check.sh --dry-run`: the GPU check's steps run on the CPU, tiny, write their records where they are
told (never into benchmarks/results), and the script's exit status says whether every step passed."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ("gpu_tests", "train", "playground", "paper_epoch", "gpu_check")
STEPS = ["setup", "gpu_tests", "bench_train", "playground", "paper_epoch"]


def script_env() -> dict:
    "This environment without the device tool's $OUT (the script copies its records there when it is set)."
    return {k: v for k, v in os.environ.items() if k != "OUT"}


def results_folder() -> dict:
    "benchmarks/results/: each file's modification time."
    return {p.name: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, dict]:
    "One dry run of the whole check: (the finished process, its --out folder, benchmarks/results before it)."
    out = tmp_path_factory.mktemp("gpu_check")
    before = results_folder()
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=ROOT,
                          env=script_env(), capture_output=True, text=True, timeout=900)
    return done, out, before


@pytest.fixture(scope="module")
def records(dry_run) -> dict:
    done, out, _ = dry_run
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return {name: json.loads((out / f"{name}_cpu.json").read_text()) for name in RECORDS}


def test_every_step_passed_and_wrote_its_record(records):
    for name, record in records.items():
        assert record["command"] and record["machine"]["date"] and "gpu" in record["machine"], name
    summary = records["gpu_check"]
    assert summary["dry_run"] and summary["device"] == "cpu" and summary["passed"]
    assert [s["step"] for s in summary["steps"]] == STEPS
    assert all(s["passed"] and s["exit_code"] == 0 and not s["timed_out"] for s in summary["steps"]), summary["steps"]


def test_the_gpu_tests_were_selected_and_skip_on_the_cpu(records):
    tests = records["gpu_tests"]
    assert tests["pytest_exit_code"] == 0 and tests["passed"]
    assert tests["count"]["skipped"] == len(tests["cases"]) >= 6  # the CUDA tests of 4 modules, at least
    assert any("test_lpips" in c["test"] for c in tests["cases"])


def test_bench_train_measured_both_losses(records):
    bench = records["train"]
    assert bench["device"] == "cpu" and bench["image_size"] == 32
    for loss in ("cae_pixel", "cae_mixed"):
        speeds = bench["results"][loss]["images_per_s"]
        assert set(speeds) >= {"plain", "engine", "fp32_channels_last", "bf16_channels_last"}
        assert all(v > 0 for v in speeds.values()), (loss, speeds)


def test_the_playground_trained_and_recorded_its_psnr_curve(records):
    pg = records["playground"]
    assert pg["device"] == "cpu" and pg["passed"] and "finished" in pg["status"]
    assert [r["epoch"] for r in pg["psnr_curve"]] == list(range(1, pg["config"]["epochs"] + 1))
    for r in pg["psnr_curve"]:
        assert 0 < r["seconds_after_train"] <= pg["seconds_allowed"]
        assert math.isfinite(r["valid_psnr"]) and 15 < r["valid_input_psnr"] < 40  # pixelated 48-px faces
    ahead = pg["ahead_of_input"]  # a dry run need not get there; where it does, the record says when
    assert ahead is None or (ahead in pg["psnr_curve"] and ahead["valid_psnr"] > ahead["valid_input_psnr"])


def test_one_epoch_was_trained_and_validated(records):
    epoch = records["paper_epoch"]
    assert epoch["device"] == "cpu" and epoch["passed"] and epoch["config"]["epochs"] == 1
    assert epoch["engine_mode"]["device"] == "cpu" and epoch["train_faces"] == epoch["config"]["n_train"]
    assert epoch["images_per_s"] > 0 and 0 < epoch["train_seconds"] <= epoch["wall_seconds"]
    assert all(math.isfinite(v) for v in epoch["valid"].values()) and epoch["valid"]["valid_input_psnr"] > 15


def test_a_dry_run_writes_nothing_into_benchmarks_results(dry_run):
    assert results_folder() == dry_run[2]
    refused = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", "benchmarks/results"], cwd=ROOT,
                             env=script_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "benchmarks/results" in refused.stderr


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="2">
<testcase classname="tests.test_metrics" name="test_cuda_matches_cpu" />
<testcase classname="tests.test_lpips" name="test_same_on_gpu"><skipped message="needs a CUDA GPU" /></testcase>
</testsuite></testsuites>"""


@pytest.mark.parametrize("codes, dry, passed", [
    ((0, 0, 0), True, True),  # every step exited 0; skipped GPU tests are right on a CPU
    ((0, 0, 0), False, False),  # on the GPU a skipped GPU test fails the check
    ((0, 0, 124), True, False),  # a step that ran out of time
    ((0, 1, 0), True, False),  # a failed step
])
def test_the_summary_fails_when_a_step_did(tmp_path, codes, dry, passed):
    steps = tmp_path / "steps.tsv"
    steps.write_text("".join(f"{name}\t{code}\t5\t60\n" for name, code in zip(("setup", "gpu_tests", "playground"), codes)))
    (tmp_path / "junit.xml").write_text(JUNIT)
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "summary", "--steps", str(steps), "--junit",
                           str(tmp_path / "junit.xml"), "--out", str(tmp_path), *(["--dry-run"] if dry else [])],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    device = "cpu" if dry else "cuda"
    summary = json.loads((tmp_path / f"gpu_check_{device}.json").read_text())
    tests = json.loads((tmp_path / f"gpu_tests_{device}.json").read_text())
    assert (done.returncode == 0) == summary["passed"] == passed, done.stderr
    assert tests["count"] == {"passed": 1, "failure": 0, "error": 0, "skipped": 1}
    assert summary["steps"][2]["timed_out"] == (codes[2] == 124)
