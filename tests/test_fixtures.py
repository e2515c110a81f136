"""conftest's fixtures without `CAE_COURSE_LFW` / `CAE_COURSE_VGG16`: they take the product's own download (served on
127.0.0.1 here), into a private cache, and check what they get."""
import hashlib
import io

import pytest
import torch
from conftest import lfw_faces, lfw_photos, vgg16_file
from test_data import ArchiveServer, face_files, make_tgz, sha
from torchvision.models import VGG16_Weights, vgg16

from cae_course.data import LFWNotFoundError
from cae_course.losses import VGG16_ENV


@pytest.fixture
def no_local_copies(tmp_path, monkeypatch):
    "No local LFW or VGG16, and private caches for the course and for torch."
    for name in ("CAE_COURSE_LFW", VGG16_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CAE_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_lfw_comes_from_load_lfws_checked_download(no_local_copies):
    archive = make_tgz(no_local_copies / "served.tgz", face_files()).read_bytes()
    with ArchiveServer({"/lfw.tgz": archive}) as srv:
        with pytest.raises(LFWNotFoundError, match="sha256"):
            lfw_faces(url=srv.url + "/lfw.tgz", sha256="0" * 64)
        faces = lfw_faces(url=srv.url + "/lfw.tgz", sha256=sha(archive))
    assert len(faces) == 6 and (no_local_copies / "cache" / "lfw-funneled.tgz").read_bytes() == archive
    photos = lfw_photos(3, url="http://127.0.0.1:9/never")  # from the cache: no second download
    assert [p.size for p in photos] == [(250, 250)] * 3


def test_vgg16_comes_from_the_losses_modules_checked_download(no_local_copies, monkeypatch):
    state = {f"features.{k}": v for k, v in vgg16().features.state_dict().items()}  # torchvision's key layout
    buffer = io.BytesIO()
    torch.save(state, buffer)
    served = buffer.getvalue()
    name = f"/vgg16-{hashlib.sha256(served).hexdigest()[:8]}.pth"  # torch.hub checks the hash the name carries
    with ArchiveServer({name: served, "/vgg16-00000000.pth": served}) as srv:
        monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1.value, "url", srv.url + "/vgg16-00000000.pth")
        with pytest.raises(RuntimeError, match="hash"):
            vgg16_file(no_local_copies)
        monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1.value, "url", srv.url + name)
        path = vgg16_file(no_local_copies)
    saved = torch.load(path, weights_only=True)
    assert saved.keys() == vgg16().features.state_dict().keys()
    assert all(torch.equal(saved[k], state[f"features.{k}"]) for k in saved)
