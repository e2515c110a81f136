"""Bring the finished runs of the background reproduction (experiments/reproduce_background.sh) into the repository:
copy each complete run's results (<from>/results/<run>/ → results/<run>/, and the manifest) and pack its model
into cae_course/weights/ with this checkout's code (`pack_model`: 8-bit weights, provenance, test and gate scores).
A run whose packed model already has its scores is left alone. Then commit results/ and cae_course/weights/.

Usage: CAE_COURSE_LFW=path/to/lfw.tgz python experiments/collect_runs.py [--from ~/.cache/cae_course/reproduce]
"""
import argparse
import shutil
from pathlib import Path

from cae_course.data import load_lfw
from cae_course.paper import EXPERIMENTS, ReproScale
from cae_course.reproduce import eval_faces, is_packed, pack_model
from cae_course.shipped import weights_dir
from cae_course.storage import read_json

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, default=Path.home() / ".cache" / "cae_course" / "reproduce",
                        help="the background reproduction's folder, holding results/ and work/ (default: %(default)s)")
    args = parser.parse_args()
    source, results, weights = args.source / "results", ROOT / "results", weights_dir()
    complete = [e for e in EXPERIMENTS if read_json(source / e.name / "test.json", {}).get("complete")]
    if not complete:
        raise SystemExit(f"no complete run in {source}")
    shutil.copy2(source / "manifest.json", results / "manifest.json")
    test = None
    for exp in complete:
        shutil.copytree(source / exp.name, results / exp.name, dirs_exist_ok=True)
        if is_packed(exp, results, weights):
            print(f"{exp.name}: already packed")
            continue
        test = eval_faces(load_lfw(progress=False), ReproScale.of_results(results)) if test is None else test
        meta = pack_model(exp, results, args.source / "work", weights, test)
        m = meta["test"]["int8"]
        print(f"{exp.name}: packed, test PSNR {m['psnr']:.2f} dB / SSIM {m['ssim']:.3f} "
              f"(input {m['input_psnr']:.2f} / {m['input_ssim']:.3f}; paper {exp.paper[0]} / {exp.paper[1]})")


if __name__ == "__main__":
    main()
