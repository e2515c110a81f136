"""Evidence that bfloat16 costs no quality: the paper's CAE + pixel loss on blur at 112, the first 3 epochs (2,859
steps) of its full-scale run, trained in fp32 and in bf16 autocast with the same seed; validation PSNR/SSIM on all
1,905 validation faces after each epoch. Target: bf16 within 0.2 dB of fp32, or better.

Where the engine does not pick bf16 (an Intel CPU without AMX, where it is slower), this script tells the engine
bf16 is fast (`cae_course.engine.cpu_bf16_is_fast`): the bf16 side is then exactly what an AMX or Zen 4 machine runs,
bf16 autocast with channels-last, computed by this CPU's AVX512-BF16 kernels.

The fp32 side is read from the paper-scale reproduction's own history when it has the epochs (`--fp32-from`): same
configuration, same seed and a constant learning rate, so its first 3 epochs *are* this run in fp32 (the number of
epochs only enters a one-cycle schedule). Without it, the fp32 run is trained here too.

Resumable (checkpoints every 10 minutes): the runs live in ~/.cache/cae_course/bf16_quality/<precision>/.
Usage: CAE_COURSE_LFW=path/to/lfw.tgz python benchmarks/bench_bf16_quality.py [--epochs 3] [--fp32-from none]
"""
import argparse
import dataclasses
import json
from pathlib import Path
from unittest.mock import patch

import cae_course.engine as engine
import cae_course.train as train
from bench_train import cpu_flags
from cae_course.data import load_lfw
from cae_course.paper import REPRO_SCALES, experiment
from cae_course.reproduce import experiment_config
from common import save_result

TARGET_DB = 0.2  # bf16 may be at most this much below fp32
RUNS = Path.home() / ".cache" / "cae_course" / "bf16_quality"
REPRODUCTION = Path.home() / ".cache" / "cae_course" / "reproduce" / "work" / "cae-pixel-blur" / "history.json"


def train(precision: str, epochs: int, faces) -> list[dict]:
    "Train the first `epochs` of cae-pixel-blur at full scale in `precision` (resuming); returns its history."
    cfg = experiment_config(experiment("cae-pixel-blur"), REPRO_SCALES["full"], epochs=epochs)
    cfg = dataclasses.replace(cfg, bf16=precision == "bf16")
    out = RUNS / precision
    with patch.object(engine, "cpu_bf16_is_fast", lambda: True):
        run = train.fit(cfg, faces, out_dir=out, resume=(out / "checkpoint.pt").exists(), device="cpu")
    assert {row["precision"] for row in run.history} == {precision}, run.history
    return run.history


def summary(history: list[dict], epochs: int) -> list[dict]:
    "Per epoch: validation PSNR/SSIM, the input's PSNR, seconds and what ran."
    return [{k: row[k] for k in ("epoch", "valid_psnr", "valid_ssim", "valid_input_psnr", "seconds", "precision",
                                 "channels_last")} for row in history[:epochs]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of 953 steps (default: %(default)s)")
    parser.add_argument("--fp32-from", default=str(REPRODUCTION),
                        help="the reproduction's history.json to take fp32 from, or 'none' (default: %(default)s)")
    args = parser.parse_args()
    faces = load_lfw()
    reproduction = Path(args.fp32_from)
    if args.fp32_from != "none" and reproduction.exists() and len(json.loads(reproduction.read_text())) >= args.epochs:
        fp32, fp32_source = json.loads(reproduction.read_text()), f"the reproduction's history ({reproduction})"
    else:
        fp32, fp32_source = train("fp32", args.epochs, faces), "trained by this script"
    bf16 = train("bf16", args.epochs, faces)
    gap = bf16[args.epochs - 1]["valid_psnr"] - fp32[args.epochs - 1]["valid_psnr"]
    save_result("bf16_quality_cpu", {
        "what": "cae-pixel-blur at full scale (batch 8, 112 px, lr 5e-4 constant, seed 0), first epochs in fp32 and bf16",
        "cpu_flags": cpu_flags(), "bf16_emulates_amx": not cpu_flags()["amx_tile"], "steps": 953 * args.epochs,
        "fp32_source": fp32_source, "fp32": summary(fp32, args.epochs), "bf16": summary(bf16, args.epochs),
        "bf16_minus_fp32_psnr_db": round(gap, 3), "target": f"bf16 ≥ fp32 − {TARGET_DB} dB", "met": gap >= -TARGET_DB,
    })


if __name__ == "__main__":
    main()
