"""A user's path on a real photo: the astronaut (scikit-image) with her face blurred by Pillow (σ 3 photo pixels on a
180-pixel box, about σ 2 at LFW's scale) and saved as JPEG q85; a file of the user's already in the output folder.
Runs `cae-course deobfuscate astro.jpg --out OUT` (default model) and records: the exit status, the files written,
whether the user's file is byte for byte the same, the PSNR of the blurred box before and after, and how many
pixels changed outside the face box the command reports. Writes results/walk_astronaut_jpeg.json.

    python experiments/walk_photo.py
"""
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage.data import astronaut

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

BOX = (150, 40, 330, 260)  # left, top, right, bottom: her face, generously

if __name__ == "__main__":
    clean = astronaut()
    with tempfile.TemporaryDirectory() as tmp:
        work, out = Path(tmp), Path(tmp) / "out"
        out.mkdir()
        photo = Image.fromarray(clean)
        photo.paste(photo.crop(BOX).filter(ImageFilter.GaussianBlur(3)), BOX[:2])
        photo.save(work / "astro.jpg", quality=85)
        Image.fromarray(clean).save(out / "astro.png")  # the user's own file, named as the output would be
        digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
        before = digest(out / "astro.png")
        run = subprocess.run(["cae-course", "deobfuscate", str(work / "astro.jpg"), "--out", str(out)], capture_output=True, text=True)
        report = json.loads((out / "deobfuscate.json").read_text())["report"][0]
        x = np.asarray(Image.open(work / "astro.jpg")).astype(float)
        y = np.asarray(Image.open(report["output"])).astype(float)
        a, s = clean.astype(float), (slice(BOX[1], BOX[3]), slice(BOX[0], BOX[2]))
        psnr = lambda u: round(float(10 * np.log10(255 ** 2 / np.mean((u[s] - a[s]) ** 2))), 2)
        bx, by, bw, bh = report["faces"][0]["box"]
        outside = np.ones(a.shape[:2], bool)
        outside[by:by + bh, bx:bx + bw] = False
        save_result("walk_astronaut_jpeg", {
            "what": "cae-course deobfuscate on the astronaut, face blurred (Pillow σ 3 px) and saved as JPEG q85",
            "exit_status": run.returncode, "written": sorted(p.name for p in out.iterdir()),
            "users_file_unchanged": digest(out / "astro.png") == before, "faces": report["faces"],
            "blurred_box_psnr": {"input": psnr(x), "restored": psnr(y)},
            "pixels_changed_outside_the_face_box": int((np.abs(y - x)[outside] > 0).sum())}, ROOT / "results")
