"""Chapter 09e's LFW framing: where and how big dlib's face box is in LFW's 250×250 photos.

Runs `cae_course.photo.find_face` (dlib's HOG detector, as `load_image` uses it) on every `--every`-th photo of the
LFW archive (sorted by path) and reports the box's centre and side: their median is `LFW_FACE_BOX`.

    python experiments/face_framing.py            # 401 photos of the archive that load_lfw finds: about a minute on 2 cores

Writes results/face_framing.json: the median and the 5/25/75/95th percentiles of the box's centre column, centre row
and side, how many photos had no face, the archive, the command, the machine and the date.
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import find_lfw, read_face_files  # noqa: E402
from cae_course.photo import find_face  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=33, help="use every N-th photo (default: %(default)s: 401 of 13,233)")
    args = parser.parse_args()
    path = find_lfw()
    photos = [Image.open(io.BytesIO(jpeg)).convert("RGB") for _, jpeg in read_face_files(path)[::args.every]]
    faces = [find_face(photo) for photo in photos]
    found = np.array([f for f in faces if f is not None])
    stats = {name: {"median": round(float(np.median(v)), 1),
                    "percentiles_5_25_75_95": [round(float(p), 1) for p in np.percentile(v, [5, 25, 75, 95])]}
             for name, v in zip(("centre_column", "centre_row", "side"), found.T)}
    save_result("face_framing", {"archive": path.name, "photos": len(faces), "no_face": len(faces) - len(found),
                                 "box_in_250_frame": stats},
                folder=ROOT / "results")


if __name__ == "__main__":
    main()
