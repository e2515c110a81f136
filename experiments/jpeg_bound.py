"""What JPEG alone costs a face: chapter 11's 300 suite faces, clean, saved as JPEG at quality 75 (the suite's) and 95,
scored against themselves (mean PSNR, dB). A bound for the blur-under-JPEG settings: no restoration of a blurred JPEG
is expected to come closer than the JPEG of the unblurred face.

    python experiments/jpeg_bound.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import save_result  # noqa: E402

from cae_course.data import denormalize, load_lfw, normalize  # noqa: E402
from cae_course.metrics import psnr  # noqa: E402
from cae_course.verdict import suite_faces  # noqa: E402
from cae_course.wild import jpeg  # noqa: E402

FACES = 300

if __name__ == "__main__":
    faces = suite_faces(load_lfw(progress=False), FACES)
    scores = {f"q{q}": psnr(denormalize(jpeg(normalize(faces), q)), faces.float() / 255).mean().item() for q in (75, 95)}
    save_result("jpeg_bound", {"what": f"mean PSNR (dB) of {FACES} clean test faces (chapter 11's, torch.randperm seed 7) "
                               "after a JPEG round trip at each quality", "faces": FACES, "psnr": scores}, ROOT / "results")
