"""Which model should `cae-course deobfuscate` use when none is named (chapter 09j's `DEFAULT_MODELS`)?

    python experiments/photo_defaults.py

The astronaut (scikit-image) obfuscated at her own scale as chapter 09j does it: her face's box blurred by σ 3, 4
and 6 relative to an LFW face, or pixelated with blocks of 6, 11 and 16 pixels on shifted grids; each stored
losslessly and as JPEG q85. Every candidate restores the face found (chapter 09h: the boxes, the tiles, the masks);
the score is the PSNR of the obfuscated region against the original, before and after. Writes
results/photo_defaults.json with the command, the machine and the date.
"""
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage.data import astronaut

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.cli import image_restorer  # noqa: E402
from cae_course.inplace import find_obfuscated, restore_face  # noqa: E402
from cae_course.photo import LFW_FACE_BOX, Picture, find_face  # noqa: E402

CANDIDATES = {"blur": ["richardson-lucy", "wiener-blind", "wild-blur"], "pixelate": ["lanczos-blind", "wild-pixelate"]}
MOSAIC_BOX = (160, 50, 130, 150)  # (x, y, w, h) around her face, as in chapter 09j and the tests


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def jpeg(pixels: np.ndarray, quality: int = 85) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def main() -> None:
    astro = astronaut()
    col, row, side = find_face(Image.fromarray(astro))
    blur_box = (round(col - 0.75 * side), round(row - 0.85 * side), round(1.5 * side), round(1.7 * side))
    made = {}
    for sigma in (3, 4, 6):
        smooth = np.asarray(Image.fromarray(astro).filter(ImageFilter.GaussianBlur(sigma * side / LFW_FACE_BOX[2])))
        x, y, w, h = blur_box
        out = astro.copy()
        out[y:y + h, x:x + w] = smooth[y:y + h, x:x + w]
        made[f"blur σ{sigma}"] = ("blur", out, blur_box)
    for n, phase in ((6, (2, 4)), (11, (5, 3)), (16, (9, 0))):
        (x, y, w, h), (dy, dx) = MOSAIC_BOX, phase
        out = astro.copy()
        for top in range(y - (y - dy) % n, y + h, n):
            for left in range(x - (x - dx) % n, x + w, n):
                t, l, b, r = max(top, y), max(left, x), min(top + n, y + h), min(left + n, x + w)
                out[t:b, l:r] = astro[t:b, l:r].reshape(-1, 3).mean(0).round()
        made[f"mosaic n{n}"] = ("pixelate", out, MOSAIC_BOX)
    restorers = {name: image_restorer(name) for names in CANDIDATES.values() for name in names}
    results = {}
    for label, (kind, clean_made, (x, y, w, h)) in made.items():
        region = (slice(y, y + h), slice(x, x + w))
        for stored, pixels in (("PNG", clean_made), ("JPEG q85", jpeg(clean_made))):
            faces = find_obfuscated(pixels)
            entry = {"input": round(psnr(pixels[region], astro[region]), 2), "found": [f.obfuscation for f in faces]}
            for name in CANDIDATES[kind]:
                picture = Picture(pixels.copy(), 255)
                for face in faces:
                    restore_face(picture, pixels, face, *restorers[name])
                entry[name] = round(psnr(picture.pixels[region], astro[region]), 2)
            results[f"{label}, {stored}"] = entry
            print(f"{label}, {stored}: {entry}", flush=True)
    save_result("photo_defaults", {
        "what": "PSNR (dB) of the obfuscated region of the astronaut (512×512) before and after each candidate default "
                "model, faces found by chapter 09h, restored in place", "results": results}, ROOT / "results", show=False)


if __name__ == "__main__":
    main()
