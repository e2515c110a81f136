"""The CPU course's promise, measured: `cae-course train` with its defaults (the quick scale on a CPU) must end at
least 0.5 dB above its obfuscated input within 5 minutes on a 2-core CPU, for the blur and for the pixelation.

Runs the command as a user would (a fresh process, LFW from the cache), for each obfuscation, and records the wall
time, the final validation PSNR and the input's. Run it on an otherwise idle machine.

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_quick_train.py
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save_result

TARGET = {"seconds": 300, "psnr_above_input_db": 0.5}


def train(obfuscation: str, out: Path) -> dict:
    "Run `cae-course train --obfuscation <obfuscation>` and return its last history row and its wall time."
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cae_course.cli", "train", "--out", str(out), "--obfuscation", obfuscation],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 1), "epochs": row["epoch"], "valid_psnr": round(row["valid_psnr"], 3),
            "valid_input_psnr": round(row["valid_input_psnr"], 3),
            "psnr_above_input_db": round(row["valid_psnr"] - row["valid_input_psnr"], 2),
            "precision": row["precision"], "channels_last": row["channels_last"]}


def main():
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for obfuscation in ("blur", "pixelate"):
            results[obfuscation] = r = train(obfuscation, Path(tmp) / obfuscation)
            r["meets_target"] = r["seconds"] <= TARGET["seconds"] and r["psnr_above_input_db"] >= TARGET["psnr_above_input_db"]
            print(obfuscation, r, flush=True)
    save_result("quick_train_cpu", {"target": TARGET, "results": results})


if __name__ == "__main__":
    main()
