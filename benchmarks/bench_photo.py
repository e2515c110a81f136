"""A 12-megapixel photo through `cae-course deobfuscate`, end to end (issue 26: target ≤ 3 s on 2 cores, detection included).

The astronaut (scikit-image) enlarged into a 4000×3000 photo, her face (about 540 pixels) pixelated with 37-pixel
blocks on a shifted grid, or blurred by σ 4 at LFW's scale, then saved as JPEG q85. Timed:

- the whole command in a fresh process (wall time, the median of --repeats): with the default models for a JPEG
  (the wild models, run in NumPy: chapters 09g and 09i) and, for the mosaic, with a classical control in PyTorch;
- the stages in this process (the median of --repeats): reading the photo, finding the faces (mosaics at full
  resolution, the face detector at reduced resolution), restoring in place, writing the PNG.

The load average is recorded beside each number: these are wall times, and a busy machine makes them longer.

Usage: python benchmarks/bench_photo.py [--repeats 3]
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

import numpy as np
from PIL import Image, ImageFilter

from common import save_result

SIZE = (4000, 3000)  # 12 megapixels
TARGET_SECONDS = 3.0


def make_photos(work: Path) -> dict[str, Path]:
    "The 12-megapixel photos: the astronaut enlarged onto a canvas, her face pixelated or blurred, saved as JPEG q85."
    from skimage.data import astronaut

    from cae_course.photo import LFW_FACE_BOX, find_face

    k = 2800 / 512
    canvas = Image.new("RGB", SIZE, (90, 110, 130))
    canvas.paste(Image.fromarray(astronaut()).resize((2800, 2800), Image.BICUBIC), (600, 100))
    pixels = np.asarray(canvas).copy()
    col, row, side = (v * k for v in find_face(Image.fromarray(astronaut())))
    col, row = col + 600, row + 100
    x, y, w, h = round(col - 0.75 * side), round(row - 0.85 * side), round(1.5 * side), round(1.7 * side)
    n, (dy, dx) = 37, (11, 29)
    mosaic = pixels.copy()
    for top in range(y - (y - dy) % n, y + h, n):
        for left in range(x - (x - dx) % n, x + w, n):
            t, l, b, r = max(top, y), max(left, x), min(top + n, y + h), min(left + n, x + w)
            mosaic[t:b, l:r] = pixels[t:b, l:r].reshape(-1, 3).mean(0).round()
    blurred = pixels.copy()
    smooth = np.asarray(Image.fromarray(pixels[y - 100:y + h + 100, x - 100:x + w + 100]).filter(
        ImageFilter.GaussianBlur(4 * side / LFW_FACE_BOX[2])))[100:-100, 100:-100]
    blurred[y:y + h, x:x + w] = smooth
    paths = {"mosaic": work / "mosaic.jpg", "blur": work / "blur.jpg"}
    Image.fromarray(mosaic).save(paths["mosaic"], quality=85)
    Image.fromarray(blurred).save(paths["blur"], quality=85)
    return paths


def wall_seconds(command: list[str], repeats: int, work: Path) -> list[float]:
    "Wall time of `command` (+ a fresh --out each time) in `repeats` fresh processes (each must exit 0)."
    times = []
    for i in range(repeats):
        out = work / f"out-{time.monotonic_ns()}"
        start = time.perf_counter()
        subprocess.run([*command, "--out", str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(round(time.perf_counter() - start, 3))
    return times


def stage_seconds(path: Path, repeats: int, work: Path) -> dict[str, float]:
    "Median seconds of each stage of one photo, in this process (models loaded once beforehand)."
    from cae_course.cli import image_restorer
    from cae_course.deobfuscate import DEFAULT_MODELS, PNG_LEVEL
    from cae_course.inplace import find_obfuscated, restore_face
    from cae_course.photo import read_picture

    restorers = {kind: image_restorer(DEFAULT_MODELS[kind, "lossy"]) for kind in ("blur", "pixelate")}  # the photos are JPEGs
    stages = {"read": [], "find": [], "restore": [], "write": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        picture = read_picture(path)
        rgb = picture.rgb()
        t1 = time.perf_counter()
        faces = find_obfuscated(rgb)
        t2 = time.perf_counter()
        for face in faces:
            restore_face(picture, rgb, face, *restorers[face.obfuscation])
        t3 = time.perf_counter()
        picture.image().save(work / f"stage-{i}.png", compress_level=PNG_LEVEL)
        t4 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[name].append(seconds)
    assert len(faces) == 1, faces
    return {name: round(statistics.median(v), 3) for name, v in stages.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (the median is reported)")
    args = parser.parse_args()
    cli = shutil.which("cae-course") or sys.exit("cae-course is not on PATH: pip install -e . first")
    work = Path(tempfile.mkdtemp())
    photos = make_photos(work)
    commands = {
        "mosaic, default model (wild-pixelate, NumPy)": [cli, "deobfuscate", str(photos["mosaic"])],
        "mosaic, lanczos-blind (PyTorch)": [cli, "deobfuscate", "lanczos-blind", str(photos["mosaic"])],
        "blur, default model (wild-blur, NumPy)": [cli, "deobfuscate", str(photos["blur"])],
    }
    rows = {}
    for name, command in commands.items():
        load = os.getloadavg()[0]
        times = wall_seconds(command, args.repeats, work)
        median = statistics.median(times)
        rows[name] = {"seconds": times, "median_seconds": median, "load_average_1min": round(load, 2),
                      "target_seconds": TARGET_SECONDS, "meets_target": median <= TARGET_SECONDS}
        print(f"{name:<48} median {median:.2f} s  (load {load:.1f})", flush=True)
    stages = {kind: stage_seconds(path, args.repeats, work) for kind, path in photos.items()}
    print(stages)
    shutil.rmtree(work)
    save_result("photo_cpu", {"what": "a 4000×3000 JPEG through `cae-course deobfuscate` in a fresh process, "
                              "detection included (median of the repeats); stages timed in one process",
                              "photo": "astronaut enlarged to 2800 px on a 4000×3000 canvas, face ≈ 500 px, JPEG q85",
                              "repeats": args.repeats, "commands": rows, "stages_seconds": stages})


if __name__ == "__main__":
    main()
