"""Issue "Beat the classical controls", measured as a user would: 8-bit PNGs of obfuscated test faces through
`cae-course deobfuscate NAME FILES --no-detect`, the outputs scored against the originals with scikit-image.

    python experiments/deobfuscate_check.py                     # the default contenders below, 600 faces
    python experiments/deobfuscate_check.py --models wiener wiener-skipcae-blur   # these again; the rest kept

The faces are chapter 11's 600 (test split, torch.randperm seed 7); blur is the paper's k9 σ4 and pixelation its
8-pixel grid from the corner, each rounded to 8 bits and saved as PNG. Every output is a new file (the command
never overwrites). Writes results/deobfuscate_check.json with the command, the machine and the date.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import load_lfw, normalize  # noqa: E402
from cae_course.obfuscate import obfuscate  # noqa: E402
from cae_course.verdict import SUITE_FACES, suite_faces  # noqa: E402
from cae_course.wild import to_uint8  # noqa: E402

TASKS = {"blur": {"kernel_size": 9, "sigma": 4.0}, "pixelate": {"block": 8}}  # the paper's obfuscations
CONTENDERS = {"blur": ["wiener", "cae-mixed1-blur", "cae-pixel-blur", "wiener-skipcae-blur", "wild-blur"],
              "pixelate": ["lanczos", "cae-pixel-pixelate", "lanczos-skipcae-pixelate", "wild-pixelate"]}


def write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    "uint8 images [N, 3, H, W] as face-0000.png … in `folder`."
    folder.mkdir(parents=True)
    paths = [folder / f"face-{i:04d}.png" for i in range(len(images))]
    for path, img in zip(paths, images):
        Image.fromarray(img.transpose(1, 2, 0)).save(path)
    return paths


def scores(outputs: list[Path], clean: np.ndarray) -> dict:
    "Mean PSNR (dB) and SSIM (scikit-image, 8-bit data range) of the output files against the clean faces."
    got = [np.asarray(Image.open(p).convert("RGB")) for p in outputs]
    ref = clean.transpose(0, 2, 3, 1)
    return {"psnr": float(np.mean([peak_signal_noise_ratio(r, g, data_range=255) for r, g in zip(ref, got)])),
            "ssim": float(np.mean([structural_similarity(r, g, channel_axis=-1, data_range=255) for r, g in zip(ref, got)])),
            "files": len(got)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", help="names to run (default: every contender of its task)")
    parser.add_argument("--faces", type=int, default=SUITE_FACES)
    args = parser.parse_args()
    clean_t = suite_faces(load_lfw(), args.faces)
    clean = clean_t.numpy()
    out_json = ROOT / "results" / "deobfuscate_check.json"
    earlier = json.loads(out_json.read_text()) if out_json.exists() else {}
    results_kept = "command" in earlier and earlier.get("faces") == args.faces
    results = earlier["results"] if results_kept else {}  # --models: the others are kept
    with tempfile.TemporaryDirectory() as tmp:
        for task, params in TASKS.items():
            obfuscated = to_uint8(obfuscate(normalize(clean_t), task, **params)).numpy()
            inputs = write_pngs(obfuscated, Path(tmp) / task)
            results[task] = {**results.get(task, {}), "input": scores(inputs, clean)}
            for name in [m for m in CONTENDERS[task] if not args.models or m in args.models]:
                out = Path(tmp) / f"{task}-{name}"
                cmd = ["cae-course", "deobfuscate", name, *map(str, inputs), "--no-detect", "--out", str(out)]
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    results[task][name] = {"error": run.stderr.strip().splitlines()[-1:]}
                else:
                    results[task][name] = scores([out / p.name for p in inputs], clean)
                print(task, name, results[task][name], flush=True)
    save_result("deobfuscate_check", {
        "what": "mean PSNR / SSIM (scikit-image, data_range 255) of `cae-course deobfuscate NAME FILES --no-detect` "
                f"on {args.faces} 8-bit PNGs of obfuscated test faces (torch.randperm seed 7), per task and model",
        "faces": args.faces, "tasks": {k: str(v) for k, v in TASKS.items()}, "results": results,
        "earlier_commands": earlier.get("earlier_commands", []) + ([{"command": earlier["command"],
                                                                     "date": earlier["machine"]["date"]}] if results_kept else [])},
        ROOT / "results")


if __name__ == "__main__":
    main()
