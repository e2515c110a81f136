"""Restoring one 112 px face in a fresh process: the NumPy runtime (`cae_course.runtime`) against PyTorch.

What `cae-course deobfuscate` pays per call: start Python, import, load a shipped model, run it on one face
(target: at most 2 s in all). Each repeat is a fresh process, the two paths alternating; the wall time includes the
interpreter's start, and each process also reports its import, load and forward seconds. The runtime's process
checks that it never imported torch.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_runtime.py [--repeats 3] [--models cae-pixel-blur rescae-pixel-blur]
"""
import argparse
import json
import os
import subprocess
import sys
import time

from common import save_result

FACE = "np.random.default_rng(0).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)"  # content does not matter
TIMED = """
import time
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{load}
t2 = time.perf_counter()
x = {face}
{forward}
t3 = time.perf_counter()
assert y.shape == (1, 3, 112, 112)
{check}
import json
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "forward": t3 - t2}}))
"""
PATHS = {
    "numpy": dict(imports="import sys\nimport numpy as np\nfrom cae_course.runtime import load_runtime_model",
                  load="model = load_runtime_model({name!r})", forward="y = model(x)",
                  check="assert 'torch' not in sys.modules"),
    "torch": dict(imports="import numpy as np\nimport torch\nfrom cae_course.shipped import pretrained",
                  load="model = pretrained({name!r})",
                  forward="with torch.no_grad():\n    y = model(torch.from_numpy(x)).numpy()", check=""),
}


def run_once(
    path: str,  # "numpy" or "torch"
    name: str,  # a shipped model
) -> dict:
    "Wall seconds of one fresh process restoring one face, and the phases it measured itself."
    parts = {k: v.format(name=name) for k, v in PATHS[path].items()}
    code = TIMED.format(face=FACE, **parts)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {"wall": time.perf_counter() - start, **json.loads(done.stdout)}


def median(values: list[float]) -> float:
    return round(sorted(values)[len(values) // 2], 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per path and model")
    parser.add_argument("--models", nargs="+", default=["cae-pixel-blur", "rescae-pixel-blur"], help="shipped models")
    parser.add_argument("--name", default="runtime_cpu", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    results, load = {}, []
    for name in args.models:
        runs = {path: [] for path in PATHS}
        for _ in range(args.repeats):
            for path in PATHS:  # alternating, so that both see the same load on a shared machine
                runs[path].append(run_once(path, name))
                load.append(round(os.getloadavg()[0], 2))
        results[name] = {path: {f"median_{k}_seconds": median([r[k] for r in rs]) for k in rs[0]} |
                         {"wall_seconds": [round(r["wall"], 3) for r in rs]} for path, rs in runs.items()}
        results[name]["speedup"] = round(results[name]["torch"]["median_wall_seconds"] /
                                         results[name]["numpy"]["median_wall_seconds"], 1)
    save_result(args.name, {
        "what": "one 112 px face restored in a fresh process (interpreter start, import, load, forward): "
                "cae_course.runtime (NumPy, no torch) vs cae_course.shipped.pretrained (PyTorch); "
                "medians of the repeats",
        "target_seconds": 2,
        "repeats": args.repeats,
        "models": results,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": load,
    })


if __name__ == "__main__":
    main()
