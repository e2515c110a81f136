"""cae_course.data: finding, downloading, reading, decoding, caching and splitting LFW, and its failure modes."""
import hashlib
import http.server
import io
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cae_course import data
from cae_course.data import (LFW_CROP, PAPER_SPLIT, DownloadError, LFWNotFoundError, UnsafeArchiveError,
                             center_crop, course_scale, denormalize, download, load_lfw, normalize,
                             split_indices, split_sizes)

PEOPLE = {"Ann_Lee": 3, "Bo_Chen": 1, "Cy_Diaz": 2}


def jpeg_bytes(seed: int, size: int = 250) -> bytes:
    "A random-looking but smooth RGB JPEG (smooth so JPEG keeps it close to the array)."
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def face_files(top: str = "lfw_funneled") -> dict[str, bytes]:
    "An LFW-like set of face files, plus a stray file that is not a face."
    files, seed = {}, 0
    for name, n in PEOPLE.items():
        for i in range(1, n + 1):
            files[f"{top}/{name}/{name}_{i:04d}.jpg"] = jpeg_bytes(seed)
            seed += 1
    files[f"{top}/README.txt"] = b"not a face"
    return files


def make_tgz(path: Path, files: dict[str, bytes], extra=()) -> Path:
    "Write `files` (and any extra TarInfo members) into a .tgz archive."
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for info in extra:
            tar.addfile(info)
    return path


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, payload in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(payload)
    return root


def expected_crop(payload: bytes) -> torch.Tensor:
    "An independent centre crop: PIL decode, numpy slicing."
    arr = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
    o = (arr.shape[0] - LFW_CROP) // 2
    return torch.from_numpy(arr[o:o + LFW_CROP, o:o + LFW_CROP].copy()).permute(2, 0, 1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    "An empty, private cache folder; no LFW from the environment."
    monkeypatch.setenv("CAE_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CAE_COURSE_LFW", raising=False)
    return tmp_path / "cache"


# --- reading and decoding -------------------------------------------------------------------------------

@pytest.mark.parametrize("top", ["lfw_funneled", "lfw-deepfunneled", "lfw"])
def test_archive_layouts_give_exact_centre_crops(tmp_path, cache, top):
    files = face_files(top)
    faces = load_lfw(make_tgz(tmp_path / "lfw.tgz", files), progress=False)
    faces_paths = sorted(p for p in files if p.endswith(".jpg"))
    assert faces.images.shape == (6, 3, 112, 112) and faces.images.dtype == torch.uint8
    assert faces.names == [p.split("/")[1] for p in faces_paths]
    for img, p in zip(faces.images, faces_paths):
        assert torch.equal(img, expected_crop(files[p]))


def test_folder_and_archive_agree(tmp_path, cache):
    files = face_files()
    a = load_lfw(make_tgz(tmp_path / "lfw.tgz", files), progress=False)
    b = load_lfw(make_folder(tmp_path / "extracted", files), progress=False)
    assert torch.equal(a.images, b.images) and a.names == b.names


def test_cache_is_reused_and_keyed_by_crop(tmp_path, cache, monkeypatch):
    archive = make_tgz(tmp_path / "lfw.tgz", face_files())
    first = load_lfw(archive, progress=False)
    assert len(list(cache.glob("faces-*.pt"))) == 1
    monkeypatch.setattr(data, "decode_faces", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    again = load_lfw(archive, progress=False)
    assert torch.equal(first.images, again.images)
    monkeypatch.undo()
    monkeypatch.setenv("CAE_COURSE_CACHE", str(cache))
    small = load_lfw(archive, crop=64, progress=False)
    assert small.images.shape[-2:] == (64, 64)
    assert torch.equal(small.images, center_crop(first.images, 64))
    assert len(list(cache.glob("faces-*.pt"))) == 2


def test_source_from_environment(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CAE_COURSE_LFW", str(make_tgz(tmp_path / "lfw.tgz", face_files())))
    assert len(load_lfw(progress=False)) == 6


def test_archive_in_user_cache_is_found(cache):
    cache.mkdir(parents=True)
    make_tgz(cache / "lfw-deepfunneled.tgz", face_files("lfw-deepfunneled"))
    assert len(load_lfw(url="http://127.0.0.1:9/never", progress=False)) == 6


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_jpegs_are_skipped_with_a_warning(tmp_path, cache, damage):
    files = face_files()
    victim = "lfw_funneled/Ann_Lee/Ann_Lee_0002.jpg"
    files[victim] = b"\xff\xd8 not really a jpeg" if damage == "garbage" else files[victim][:2000]
    with pytest.warns(UserWarning, match=r"skipped 1 image"):
        faces = load_lfw(make_tgz(tmp_path / "lfw.tgz", files), progress=False)
    assert len(faces) == 5 and faces.names.count("Ann_Lee") == 2


def test_empty_and_foreign_folders_are_refused(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no LFW faces"):
        load_lfw(tmp_path / "empty", progress=False)
    make_folder(tmp_path / "photos", {"holiday/beach.jpg": jpeg_bytes(0), "cat.jpg": jpeg_bytes(1)})
    with pytest.raises(ValueError, match="no LFW faces"):
        load_lfw(tmp_path / "photos", progress=False)


def test_missing_source_and_non_archive(tmp_path, cache):
    with pytest.raises(LFWNotFoundError, match="does not exist"):
        load_lfw(tmp_path / "nope.tgz", progress=False)
    (tmp_path / "notes.tgz").write_bytes(b"this is not a tar archive at all" * 10)
    with pytest.raises(ValueError, match="not a readable LFW archive"):
        load_lfw(tmp_path / "notes.tgz", progress=False)


def _member(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("bad", [
    ("/etc/evil.jpg", tarfile.REGTYPE, "absolute"),
    ("lfw_funneled/../../evil.jpg", tarfile.REGTYPE, r"'\.\.'"),
    ("lfw_funneled/Ann_Lee/link.jpg", tarfile.SYMTYPE, "link"),
    ("lfw_funneled/Ann_Lee/hard.jpg", tarfile.LNKTYPE, "link"),
    ("lfw_funneled/dev", tarfile.CHRTYPE, "device"),
    ("lfw_funneled/fifo", tarfile.FIFOTYPE, "device"),
])
def test_unsafe_archive_members_are_refused_before_anything_is_written(tmp_path, cache, bad):
    name, kind, message = bad
    archive = make_tgz(tmp_path / "evil.tgz", face_files(), extra=[_member(name, kind, "/etc/passwd")])
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchiveError, match=message):
        load_lfw(archive, progress=False)
    assert sorted(tmp_path.rglob("*")) == before  # not even the cache folder was created


# --- downloading ---------------------------------------------------------------------------------------

class ArchiveServer:
    "A tiny HTTP server on 127.0.0.1 serving byte strings; `/cut/...` announces more bytes than it sends."

    def __init__(self, routes: dict[str, bytes]):
        routes_ = routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                cut = self.path.startswith("/cut/")
                body = routes_.get(self.path.removeprefix("/cut"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def good_archive(tmp_path) -> bytes:
    return make_tgz(tmp_path / "served.tgz", face_files()).read_bytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_download_then_load(cache, good_archive):
    with ArchiveServer({"/lfw.tgz": good_archive}) as srv:
        faces = load_lfw(url=srv.url + "/lfw.tgz", sha256=sha(good_archive), progress=False)
    assert len(faces) == 6
    assert (cache / "lfw-funneled.tgz").read_bytes() == good_archive
    assert not list(cache.glob("*.part"))
    # the second call finds the downloaded archive and never asks the network
    assert len(load_lfw(url="http://127.0.0.1:9/unreachable", progress=False)) == 6


def test_checksum_mismatch_keeps_nothing(cache, good_archive):
    with ArchiveServer({"/lfw.tgz": good_archive}) as srv:
        with pytest.raises(LFWNotFoundError, match="checksum mismatch"):
            load_lfw(url=srv.url + "/lfw.tgz", sha256="0" * 64, progress=False)
    assert not (cache / "lfw-funneled.tgz").exists() and not list(cache.glob("*.part"))


def test_interrupted_download_keeps_nothing(cache, good_archive, tmp_path):
    with ArchiveServer({"/lfw.tgz": good_archive}) as srv:
        with pytest.raises(DownloadError):
            download(srv.url + "/cut/lfw.tgz", tmp_path / "x.tgz", sha(good_archive))
    assert not (tmp_path / "x.tgz").exists() and not (tmp_path / "x.tgz.part").exists()


def test_corrupt_download_with_matching_checksum_is_reported(cache):
    junk = b"\x1f\x8b this pretends to be gzip" * 100
    with ArchiveServer({"/lfw.tgz": junk}) as srv:
        with pytest.raises(ValueError, match="not a readable LFW archive"):
            load_lfw(url=srv.url + "/lfw.tgz", sha256=sha(junk), progress=False)


def test_no_source_and_no_network_explains_how_to_provide_data(cache):
    with ArchiveServer({}) as srv:  # every path is a 404: like a dead mirror
        with pytest.raises(LFWNotFoundError) as err:
            load_lfw(url=srv.url + "/gone.tgz", progress=False)
    message = str(err.value)
    assert "CAE_COURSE_LFW" in message and "load_lfw(" in message and str(cache) in message
    assert not list(cache.glob("*.part"))


# --- splits, normalisation, scale ----------------------------------------------------------------------

def test_paper_split_sizes():
    assert split_sizes(13233) == PAPER_SPLIT
    assert [len(s) for s in split_indices(13233)] == list(PAPER_SPLIT[:2]) + [PAPER_SPLIT[2]]
    assert split_sizes(1000, test_frac=0.3) == (560, 140, 300)
    with pytest.raises(ValueError):
        split_sizes(10, test_frac=1.5)


def test_split_is_a_deterministic_partition():
    a = split_indices(500, seed=3)
    assert torch.equal(torch.cat(a).sort().values, torch.arange(500))
    assert all(torch.equal(x, y) for x, y in zip(a, split_indices(500, seed=3)))
    assert not torch.equal(a[2], split_indices(500, seed=4)[2])


def test_identity_disjoint_split():
    rng = np.random.default_rng(0)
    names = [f"p{k}" for k in rng.integers(0, 120, 1000)]
    train, valid, test = split_indices(1000, groups=names)
    assert torch.equal(torch.cat([train, valid, test]).sort().values, torch.arange(1000))
    people = [{names[i] for i in s.tolist()} for s in (train, valid, test)]
    assert not (people[0] & people[1] or people[0] & people[2] or people[1] & people[2])
    n_train, n_valid, n_test = split_sizes(1000)
    assert abs(len(test) - n_test) < 40 and abs(len(valid) - n_valid) < 40
    with pytest.raises(ValueError, match="groups"):
        split_indices(10, groups=["a"] * 9)


def test_normalize_round_trip_and_range():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    y = normalize(x)
    assert y.min() == -1 and y.max() == 1
    assert torch.equal((denormalize(y) * 255).round().to(torch.uint8), x)
    f = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(denormalize(normalize(f)), f)


def test_real_lfw(lfw):
    assert lfw.images.shape == (13233, 3, 112, 112) and len(set(lfw.names)) == 5749
    assert [len(s) for s in split_indices(len(lfw))] == list(PAPER_SPLIT)


def test_course_scale(monkeypatch):
    monkeypatch.delenv("CAE_COURSE_SCALE", raising=False)
    assert course_scale("cpu").name == "quick" and course_scale("cuda").name == "full"
    monkeypatch.setenv("CAE_COURSE_SCALE", "full")
    assert course_scale("cpu").image_size == 112
    monkeypatch.setenv("CAE_COURSE_SCALE", "huge")
    with pytest.raises(ValueError, match="huge"):
        course_scale()
