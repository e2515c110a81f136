"""The re-identification tools of chapter 10 (cae_course.privacy): intervals against SciPy, the gallery/probe split,
the report's logic, and dlib's face descriptor on real LFW faces (skipped without the optional `privacy` extra)."""
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from cae_course import privacy
from cae_course.data import split_indices
from cae_course.obfuscate import pixelate
from cae_course.privacy import (MATCH_THRESHOLD, PRIVACY_HINT, bootstrap_interval, face_arrays, gallery_and_probes,
                                privacy_extra_installed, reidentification, wilson_interval)

ROOT = Path(__file__).resolve().parents[1]
needs_face_model = pytest.mark.skipif(not privacy_extra_installed(), reason=PRIVACY_HINT)


@pytest.mark.parametrize("k,n", [(0, 1), (0, 20), (7, 20), (20, 20), (400, 441), (3, 441)])
def test_wilson_matches_scipy(k, n):
    expected = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    np.testing.assert_allclose(wilson_interval(k, n), (expected.low, expected.high), atol=1e-9)
    expected = stats.binomtest(k, n).proportion_ci(0.9, method="wilson")
    np.testing.assert_allclose(wilson_interval(k, n, level=0.9), (expected.low, expected.high), atol=1e-9)


def test_bootstrap_matches_scipy():
    values = torch.rand(300, generator=torch.Generator().manual_seed(3))
    ours = bootstrap_interval(values)
    theirs = stats.bootstrap((values.numpy(),), np.mean, method="percentile", n_resamples=10_000,
                             random_state=0).confidence_interval
    np.testing.assert_allclose(ours, (theirs.low, theirs.high), atol=0.01)
    assert ours[0] < values.double().mean().item() < ours[1]
    assert bootstrap_interval(values, seed=1) != ours  # it is random, and seeded


def test_intervals_reject_bad_input():
    for k, n in [(5, 4), (-1, 4), (0, 0)]:
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(k, n)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_interval(torch.ones(1))


def test_gallery_and_probes_on_the_disjoint_test_split(lfw):
    _, _, test = split_indices(len(lfw), groups=lfw.names)
    names = [lfw.names[i] for i in test.tolist()]
    gallery, probes, truth = gallery_and_probes(names)
    assert len(gallery) == len(set(names))
    assert sorted(names[i] for i in gallery.tolist()) == sorted(set(names))  # every person once...
    assert [names[i] for i in gallery[truth].tolist()] == [names[i] for i in probes.tolist()]  # ...in the probe's slot
    assert len(probes) == sum(c >= 2 for c in Counter(names).values())
    assert not set(gallery.tolist()) & set(probes.tolist())
    again = gallery_and_probes(names)
    assert all(torch.equal(a, b) for a, b in zip(again, (gallery, probes, truth)))
    assert not torch.equal(gallery_and_probes(names, seed=1)[1], probes)


def test_reidentification_logic():
    codes = torch.randn(40, 128, generator=torch.Generator().manual_seed(0)) * 0.1
    truth = torch.arange(40)
    report, outcomes = reidentification(codes + 1e-3, codes, truth)
    assert report["top1"]["rate"] == report["genuine_match"]["rate"] == 1.0
    assert outcomes.shape == (40, 3) and outcomes[:, :2].all()
    report, _ = reidentification(codes.roll(1, dims=0), codes, truth)  # probe i sits on person i-1's code
    assert report["top1"]["rate"] == 0.0
    gallery = 10 * torch.eye(40, 128)  # people far apart; each probe nearest its own person, yet 10 away from it:
    probes = gallery + 10 * torch.eye(40, 128).roll(64, dims=1)  # identified (1:N) but not verified (1:1)
    report, outcomes = reidentification(probes, gallery, truth)
    assert report["top1"]["rate"] == 1.0 and report["genuine_match"]["rate"] == 0.0
    assert report["false_match"]["rate"] == 0.0 and report["verification_accuracy"]["rate"] == 0.5
    lo, hi = report["verification_accuracy"]["low"], report["verification_accuracy"]["high"]
    assert lo == hi == 0.5  # every probe scores exactly one of its two decisions right
    with pytest.raises(ValueError, match="one truth per probe"):
        reidentification(codes[:3], codes, truth)


def test_missing_extra_gives_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name, *a))
    assert not privacy_extra_installed()
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[privacy\]"'):
        privacy.FaceEncoder()


def test_face_arrays_checks_its_input(lfw):
    faces = lfw.images[:2]
    assert face_arrays(faces).shape == (2, 112, 112, 3) and face_arrays(faces).dtype == np.uint8
    np.testing.assert_array_equal(face_arrays(faces.float() / 255), face_arrays(faces))
    with pytest.raises(ValueError, match="RGB"):
        face_arrays(faces[:, :1])
    with pytest.raises(ValueError, match="too small"):
        face_arrays(faces[..., :20, :20])
    with pytest.raises(ValueError, match="uint8"):
        face_arrays(faces.to(torch.int32))


@pytest.fixture(scope="module")
def encoder():
    if not privacy_extra_installed():
        pytest.skip(PRIVACY_HINT)
    return privacy.FaceEncoder()


@pytest.fixture(scope="module")
def pairs(lfw):
    "Two photos each of five people from the identity-disjoint test split: [10, 3, 112, 112], person i at 2i and 2i+1."
    _, _, test = split_indices(len(lfw), groups=lfw.names)
    by_person = {}
    for i in test.tolist():
        by_person.setdefault(lfw.names[i], []).append(i)
    chosen = [v[:2] for v in by_person.values() if len(v) >= 2][:5]
    return lfw.images[[i for pair in chosen for i in pair]]


@needs_face_model
def test_model_files_are_in_the_package():
    files = privacy.face_model_files()
    assert all(p.is_file() and p.stat().st_size > 1_000_000 for p in files.values())


@needs_face_model
def test_same_person_is_nearest_and_within_threshold(encoder, pairs):
    codes = encoder(pairs)
    assert codes.shape == (10, 128) and codes.dtype == torch.float32
    distance = torch.cdist(codes, codes).fill_diagonal_(float("inf"))
    person = torch.arange(10) // 2
    assert torch.equal(person[distance.argmin(dim=1)], person)  # nearest neighbour: the other photo of the person
    genuine = distance[torch.arange(10), torch.arange(10) ^ 1]
    assert (genuine < MATCH_THRESHOLD).all()
    assert (distance[person[:, None] != person[None]] > genuine.min()).all()


@needs_face_model
def test_chips_agree_with_dlibs_own_route(encoder, pairs):
    "Our chip-then-describe path against dlib's compute_face_descriptor(image, landmarks), which cuts the chip itself."
    chips = encoder.chips(pairs[:4])
    assert chips.shape == (4, 150, 150, 3) and chips.dtype == np.uint8
    images = face_arrays(pairs[:4])
    box = encoder.dlib.rectangle(0, 0, 111, 111)
    direct = torch.tensor([list(encoder.net.compute_face_descriptor(a, encoder.landmarks(a, box), 0, 0.25))
                           for a in images])
    torch.testing.assert_close(encoder(pairs[:4]), direct.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(encoder(pairs[:4].float() / 255), encoder(pairs[:4]))


@needs_face_model
def test_pixelation_moves_faces_away_from_themselves(encoder, pairs):
    clean = encoder(pairs)
    blocky = encoder(pixelate(pairs.float() / 255, 8))
    assert ((blocky - clean).norm(dim=1) > 0.1).all()
    report, _ = reidentification(clean[1::2], clean[::2], torch.arange(5))
    assert report["top1"]["rate"] == 1.0


def test_committed_report_is_of_models_that_undo_their_obfuscation():
    """Chapter 10a's conclusions rest on results/privacy_reid.json: its CAEs must be the paper-scale ones (15 epochs of
    every training identity's faces), each better than its obfuscated input on the validation faces, rates consistent."""
    report = json.loads((ROOT / "results" / "privacy_reid.json").read_text())
    assert set(report["models"]) == {"cae-pixel-blur", "cae-pixel-pixelate"}
    for name, model in report["models"].items():
        assert (model["config"]["epochs"], model["config"]["n_train"]) == (15, None), name
        assert [row["epoch"] for row in model["history"]] == list(range(1, 16)), name
        last = model["history"][-1]
        assert last["valid_psnr"] > last["valid_input_psnr"] + 2, name  # a real reconstruction, not a stand-in
        assert f"{name} reconstruction" in report["conditions"]
    n = report["probes"]["count"]
    for condition, rates in report["conditions"].items():
        top1 = rates["top1"]
        assert top1["n"] == n and top1["low"] <= top1["rate"] <= top1["high"], condition
        assert sum(report["top1_per_probe"][condition]) == top1["successes"], condition
