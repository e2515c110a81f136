"""Shared fixtures: the real LFW faces (from the offline copy beside the repo, or $CAE_COURSE_LFW)."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def lfw_source() -> Path | None:
    "The LFW archive the tests use: `$CAE_COURSE_LFW`, else the offline copy in ../shared."
    path = Path(os.environ.get("CAE_COURSE_LFW") or SHARED / "data" / "lfw-deepfunneled.tgz")
    return path if path.exists() else None


@pytest.fixture(scope="session")
def lfw():
    "All of LFW as `cae_course.data.LFW` (decoded once into the user cache, then loaded in about a second)."
    from cae_course.data import load_lfw

    source = lfw_source()
    if source is None:
        pytest.skip("no LFW archive: set CAE_COURSE_LFW to an LFW .tgz or folder")
    return load_lfw(source, progress=False)


@pytest.fixture(scope="session")
def vgg16_weights() -> Path:
    "A local VGG16 state dict (`$CAE_COURSE_VGG16`, else the offline copy in ../shared/weights)."
    path = Path(os.environ.get("CAE_COURSE_VGG16") or SHARED / "weights" / "vgg16_features.pth")
    if not path.exists():
        pytest.skip("no VGG16 weights: set CAE_COURSE_VGG16 to a torchvision vgg16().features state dict")
    return path
