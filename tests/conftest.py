"""Shared fixtures: real LFW faces and photos, and the VGG16 weights, found the way the README promises.

`$CAE_COURSE_LFW` / `$CAE_COURSE_VGG16` name local copies (CI points them at the offline copies beside the repo);
without them the fixtures take the product's own path: `load_lfw`'s cache or checked download, and the losses
module's search (torchvision's checked download). Nothing is skipped.
"""
import io
import os
from pathlib import Path

import pytest
from PIL import Image


def lfw_faces(**download):
    "All of LFW as `cae_course.data.LFW`, as `load_lfw` finds it (`download`: its `url` and `sha256`, for tests)."
    from cae_course.data import load_lfw

    return load_lfw(progress=False, **download)


def lfw_photos(
    n: int = 16,  # how many photos
    **download,  # `find_lfw`'s `url` and `sha256`, for tests
) -> list[Image.Image]:
    "`n` whole LFW photos (250×250 RGB), spread over the archive `find_lfw` finds."
    from cae_course.data import find_lfw, read_face_files

    files = read_face_files(find_lfw(progress=False, **download))
    return [Image.open(io.BytesIO(jpeg)).convert("RGB") for _, jpeg in files[::max(1, len(files) // n)][:n]]


def vgg16_file(
    folder: Path,  # where to save the weights when they are not a local file already
) -> Path:
    "A `vgg16().features` state-dict file: `$CAE_COURSE_VGG16`, else the losses module's own download, saved in `folder`."
    import torch
    from torchvision.models import vgg16

    from cae_course.losses import VGG16_ENV, vgg16_weights

    if os.environ.get(VGG16_ENV):
        return Path(os.environ[VGG16_ENV])
    torch.save(vgg16_weights(layers=vgg16().features), folder / "vgg16_features.pth")
    return folder / "vgg16_features.pth"


def pytest_configure(config):
    "Register the `gpu` marker: tests that need CUDA (skipped without it); `benchmarks/gpu_check.sh` runs `-m gpu`."
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one); run by benchmarks/gpu_check.sh")


@pytest.fixture(scope="session")
def lfw():
    "All of LFW (decoded once into the user cache, then loaded in about a second)."
    return lfw_faces()


@pytest.fixture(scope="session")
def lfw_photo_sample() -> list[Image.Image]:
    "16 whole LFW photos, 250×250, face centred as LFW frames it."
    return lfw_photos()


@pytest.fixture(scope="session")
def vgg16_weights(tmp_path_factory) -> Path:
    "A local VGG16 `features` state-dict file (see `vgg16_file`)."
    return vgg16_file(tmp_path_factory.mktemp("vgg16"))
