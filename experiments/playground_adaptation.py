"""Chapter 08's measurement: how long the playground takes to adapt a shipped model to a new obfuscation strength.

Drives `Playground` from code as a learner does in the browser, with the playground's CPU defaults: move n (or σ)
away from the shipped model's training value, press Train, and read the validation metrics that appear after each
epoch, with the seconds since Train. The model has *adapted* at the first epoch whose validation PSNR beats the
shipped model's at the new setting (epoch 0, measured before training) by at least `--margin` dB and the
obfuscated input's.

    python experiments/playground_adaptation.py        # pixelation n 8 → 12, then blur σ 4 → 2: about 4 min each

Writes results/playground_adaptation.json: per case the points (seconds after Train, epoch, validation PSNR/SSIM of
the reconstruction and of the input, the 1-minute load average then), the time to adapt, the settings, and the
machine with its load averages (other work on it slows every number here).
"""
import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import load_lfw  # noqa: E402
from cae_course.playground import Playground, obfuscation_label  # noqa: E402

CASES = {"pixelate": 12, "blur": 2.0}  # the obfuscation and its new n or σ (the shipped models: n = 8, σ = 4)


def adapt(
    faces,  # the face set
    obfuscation: str,  # "pixelate" or "blur"
    value: float,  # the new n or σ
    seconds: float,  # stop the run after this long
    margin: float,  # dB over the shipped model's PSNR that counts as adapted
) -> dict:
    "One learner's try: the points seen after Train, and when the model had adapted."
    pg = Playground(faces, device="cpu")
    pg.obfuscation.value = obfuscation
    (pg.block if obfuscation == "pixelate" else pg.sigma).value = value
    start, load = pg.start_name(), os.getloadavg()
    pg.start()
    points = []
    while pg.running() and time.monotonic() - pg.started < seconds:
        for row in pg.rows()[len(points):]:
            points.append({"seconds": round(time.monotonic() - pg.started, 1), "load_1min": round(os.getloadavg()[0], 2),
                           **{k: round(row[k], 4) for k in ("valid_psnr", "valid_ssim", "valid_input_psnr",
                                                            "valid_input_ssim")}, "epoch": row["epoch"]})
        time.sleep(0.1)
    pg.stop()
    pg.thread.join()
    shipped = points[0]["valid_psnr"]
    adapted = next((p for p in points[1:] if p["valid_psnr"] >= shipped + margin and p["valid_psnr"] > p["valid_input_psnr"]), None)
    print(f"{start} on {obfuscation_label(pg.config)}: adapted after {adapted and adapted['seconds']} s", file=sys.stderr)
    return {"start_from": start, "setting": obfuscation_label(pg.config), "margin_db": margin,
            "adapted_seconds": adapted and adapted["seconds"], "adapted_epoch": adapted and adapted["epoch"],
            "load_average_at_train": [round(x, 2) for x in load], "config": dataclasses.asdict(pg.config),
            "points": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240, help="length of each run (default: %(default)s)")
    parser.add_argument("--margin", type=float, default=0.5, help="dB over the shipped model (default: %(default)s)")
    args = parser.parse_args()
    faces = load_lfw(progress=False)
    runs = [adapt(faces, obfuscation, value, args.seconds, args.margin) for obfuscation, value in CASES.items()]
    save_result("playground_adaptation", {"runs": runs}, folder=ROOT / "results", show=False)


if __name__ == "__main__":
    main()
