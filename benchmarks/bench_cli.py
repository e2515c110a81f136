"""Start-up of the `cae-course` command: wall time of each command in a fresh process, the median of --repeats runs.

- `cae-course --help` and `cae-course train --help` (targets ≤ 1 s, aim 0.3 s): the parser imports no PyTorch;
- `cae-course deobfuscate cae-pixel-blur face.png` on one blurred 112 px face, with and without face detection (target
  ≤ 2 s in all): the shipped model runs in NumPy (chapter 09g), the photo is read without PyTorch (chapter 09f);
- the baselines measured in the same run: `python -c "import torch"` (what every command paid before) and an empty
  Python start.

The load average is recorded beside each number: these are wall times, and a busy machine makes them longer.

Usage: python benchmarks/bench_cli.py [--repeats 5]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save_result

TARGETS = {"help": 1.0, "train --help": 1.0, "deobfuscate one face": 2.0, "deobfuscate one face --no-detect": 2.0}


def wall_seconds(
    command: list[str],  # the command line to run
    repeats: int,  # how many fresh processes to time
) -> list[float]:
    "Wall time of `command` in `repeats` fresh processes (each must exit 0)."
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(round(time.perf_counter() - start, 3))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command (the median is reported)")
    args = parser.parse_args()

    from skimage.data import astronaut
    from PIL import Image, ImageFilter

    cli = shutil.which("cae-course") or sys.exit("cae-course is not on PATH: pip install -e . first")
    work = Path(tempfile.mkdtemp())
    # the astronaut's face at LFW's scale (chapter 09e), blurred (σ 4), as a user would pass an already cropped face
    Image.fromarray(astronaut()[59:171, 168:280]).filter(ImageFilter.GaussianBlur(4)).save(work / "face.png")
    commands = {
        "python start": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "help": [cli, "--help"],
        "train --help": [cli, "train", "--help"],
        "deobfuscate one face": [cli, "deobfuscate", "cae-pixel-blur", str(work / "face.png"), "--out", str(work / "a")],
        "deobfuscate one face --no-detect": [cli, "deobfuscate", "cae-pixel-blur", str(work / "face.png"),
                                             "--out", str(work / "b"), "--no-detect"],
    }
    rows = {}
    for name, command in commands.items():
        load = os.getloadavg()[0]
        times = wall_seconds(command, args.repeats)
        rows[name] = {"seconds": times, "median_seconds": statistics.median(times), "load_average_1min": round(load, 2),
                      **({"target_seconds": TARGETS[name], "meets_target": statistics.median(times) <= TARGETS[name]}
                         if name in TARGETS else {})}
        print(f"{name:<34} median {rows[name]['median_seconds']:.2f} s  (load {load:.1f})", flush=True)
    shutil.rmtree(work)
    save_result("cli_cpu", {"what": "wall time of each command in a fresh process (median of the repeats)",
                            "repeats": args.repeats, "commands": rows})


if __name__ == "__main__":
    main()
