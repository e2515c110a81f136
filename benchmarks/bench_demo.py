"""Wall time of `cae-course demo`, started cold as a user starts it: Python, torch, the shipped models, the figure.

The target is under 30 s on a 2-core CPU without a GPU. Each repeat is a fresh process; the machine's load average
is recorded too, because the build machines are shared.

Usage: python benchmarks/bench_demo.py [--repeats 3] [--name demo_cpu]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save_result

from cae_course.shipped import pretrained_info, pretrained_names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes to time")
    parser.add_argument("--name", default="demo_cpu", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    command = [shutil.which("cae-course") or sys.executable, *([] if shutil.which("cae-course") else ["-m", "cae_course.cli"])]
    seconds, load = [], []
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "demo.png"
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([*command, "demo", "--out", str(png)], check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
            load.append(os.getloadavg()[0])
            assert png.stat().st_size > 0
    save_result(args.name, {
        "what": "wall time of `cae-course demo` (astronaut face, every shipped model, one PNG), fresh process each",
        "seconds": [round(s, 2) for s in seconds],
        "median_seconds": round(sorted(seconds)[len(seconds) // 2], 2),
        "target_seconds": 30,
        "load_average_1min": load,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "models": {n: pretrained_info(n)["provenance"] for n in pretrained_names()},
    })


if __name__ == "__main__":
    main()
