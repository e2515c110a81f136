"""How the quick CPU scale was chosen (chapter 07): train the CAE to undo the blur with candidate recipes and score
each on 256 validation faces against the blurred input.

    python experiments/quick_scale.py                 # every candidate below, one after the other (about an hour on 2 cores)
    python experiments/quick_scale.py --only 5        # one candidate, by its index

Appends one row per candidate to results/quick_scale.json (with the command, the machine and the date): the recipe,
the validation PSNR/SSIM after every epoch, the input's, and the seconds each epoch took.
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import load_lfw  # noqa: E402
from cae_course.config import TrainConfig
from cae_course.train import fit  # noqa: E402

CANDIDATES = [  # (image_size, faces, epochs, schedule, peak lr)
    (64, 512, 2, "constant", 5e-4),  # the former quick scale
    (64, 2048, 4, "onecycle", 2e-3),
    (64, 2048, 4, "onecycle", 4e-3),
    (48, 2048, 4, "onecycle", 2e-3),
    (48, 4096, 3, "onecycle", 2e-3),
    (48, 2048, 6, "onecycle", 2e-3),  # the quick scale
    (48, 4096, 4, "onecycle", 2e-3),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=int, nargs="*", help="indices of the candidates to run (default: all)")
    args = p.parse_args()
    faces = load_lfw(progress=False)
    path = ROOT / "results" / "quick_scale.json"
    rows = json.loads(path.read_text())["runs"] if path.exists() else []
    for i in args.only if args.only is not None else range(len(CANDIDATES)):
        size, n, epochs, schedule, lr = CANDIDATES[i]
        cfg = TrainConfig(image_size=size, n_train=n, n_valid=256, epochs=epochs, schedule=schedule, lr=lr)
        start = time.perf_counter()
        run = fit(cfg, faces, device="cpu", progress=False)
        last = run.history[-1]
        rows.append({"candidate": i, "image_size": size, "faces": n, "epochs": epochs, "steps": epochs * n // 8,
                     "schedule": schedule, "lr": lr, "seconds": round(time.perf_counter() - start, 1),
                     "psnr_by_epoch": [round(r["valid_psnr"], 3) for r in run.history],
                     "input_psnr": round(last["valid_input_psnr"], 3),
                     "psnr_above_input": round(last["valid_psnr"] - last["valid_input_psnr"], 2)})
        print(rows[-1], flush=True)
    save_result("quick_scale", {"runs": rows}, folder=ROOT / "results", show=False)


if __name__ == "__main__":
    main()
