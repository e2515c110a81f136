"""Tests for `cae_course.losses`: the real ImageNet VGG16 weights, real LFW faces, and every failure mode."""
import math
import os
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import VGG16_Weights
from torchvision.transforms import Normalize

import cae_course.losses as losses  # `losses.vgg16_weights`: the name `vgg16_weights` is conftest's fixture
from cae_course.data import DownloadError, denormalize, normalize
from cae_course.losses import (IMAGENET_MEAN, IMAGENET_STD, VGG16_ENV, MixedLoss, PerceptualLoss, PixelLoss,
                               make_loss, pixel_loss, vgg16_relu2_2)
from cae_course.obfuscate import gaussian_blur

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu,
                                               pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")])]


def reference_relu2_2_state(path) -> dict:
    "The `features[:9]` tensors of a torchvision VGG16 state-dict file (any layout), read without `cae_course`."
    state = {k.removeprefix("features."): v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    return {k: v for k, v in state.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) < 9}


def reference_features(state: dict) -> torch.nn.Module:
    "torchvision's own relu2_2 network with `state` loaded, behind the documented preprocessing (upsample, normalise)."
    vgg = torchvision.models.vgg16().features[:9]
    vgg.load_state_dict(state)
    normalise = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return lambda x: vgg(normalise(F.interpolate(denormalize(x), scale_factor=2, mode="bilinear")))


def relative_distance(loss: PerceptualLoss, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    "‖φ(x) − φ(y)‖² / ‖φ(x)‖² per image: a feature distance that does not depend on the scale of the features."
    with torch.no_grad():
        fx, fy = loss.features(x), loss.features(y)
    return (fx - fy).pow(2).mean(dim=(1, 2, 3)) / fx.pow(2).mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def perceptual(vgg16_weights) -> PerceptualLoss:
    return PerceptualLoss(vgg16_weights)


@pytest.fixture(scope="module")
def faces(lfw) -> torch.Tensor:
    "Four LFW faces of different people, spread over the archive, in [-1, 1]."
    return normalize(lfw.images[::3300][:4])


# --- pixel loss -------------------------------------------------------------------------------------------------
def test_pixel_loss_is_the_mean_squared_error():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 5, 7, generator=g) * 2 - 1, torch.rand(2, 3, 5, 7, generator=g) * 2 - 1
    expected = np.mean((a.numpy().astype(np.float64) - b.numpy()) ** 2)
    assert pixel_loss(a, b).item() == pytest.approx(expected, rel=1e-6)
    assert PixelLoss()(a, b).item() == pytest.approx(expected, rel=1e-6)


def test_pixel_loss_refuses_to_broadcast():
    with pytest.raises(ValueError, match="same shape"):
        pixel_loss(torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8))


# --- perceptual loss on real faces ------------------------------------------------------------------------------
def test_perceptual_loss_is_zero_for_identical_images(perceptual, faces):
    assert perceptual(faces, faces.clone()).item() == 0


@pytest.mark.parametrize("taps", [lambda sigma: 9, lambda sigma: 2 * math.ceil(3 * sigma) + 1],
                         ids=["paper's 9 taps", "2⌈3σ⌉+1 taps"])
def test_perceptual_loss_grows_with_blur_on_every_face(perceptual, faces, taps):
    with torch.no_grad():
        clean = perceptual.features(faces)
        per_face = torch.stack([
            (perceptual.features(gaussian_blur(faces, taps(sigma), float(sigma))) - clean).pow(2).mean(dim=(1, 2, 3))
            for sigma in range(1, 7)], dim=1)  # [faces, σ = 1 … 6]
    assert (per_face.diff(dim=1) > 0).all(), per_face


def test_imagenet_features_are_far_more_blur_sensitive_than_random_ones(perceptual, faces, tmp_path):
    """Real against random VGG16 weights on the same (clean, blurred) pairs.

    The raw losses of two networks are not comparable: relu2_2 of a ReLU network with zero biases (torchvision's
    initialisation) is positively homogeneous in each layer's weights, so rescaling the random weights by c rescales
    the loss by c⁸, and any ratio of raw losses would measure the initialisation's scale, not what the features
    encode. The relative distance ‖φ(x) − φ(blur x)‖² / ‖φ(x)‖² is free of that scale. Measured here: ≈ 0.4–0.5
    with ImageNet weights, ≈ 0.03–0.08 with random ones, so a factor 4 leaves a wide margin. Three seeds guard
    against one lucky draw.
    """
    blurred = gaussian_blur(faces)
    trained = relative_distance(perceptual, faces, blurred)
    for seed in range(3):
        torch.manual_seed(seed)
        path = tmp_path / f"random_{seed}.pth"
        torch.save(torchvision.models.vgg16(weights=None).features[:9].state_dict(), path)
        random = relative_distance(PerceptualLoss(path), faces, blurred)
        assert (trained > 4 * random).all(), (seed, trained, random)


def test_features_match_torchvisions_vgg16(perceptual, faces, vgg16_weights):
    reference = reference_features(reference_relu2_2_state(vgg16_weights))
    blurred = gaussian_blur(faces)
    with torch.no_grad():
        ours, theirs = perceptual.features(faces), reference(faces)
        assert ours.shape == (4, 128, 112, 112)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(perceptual(blurred, faces), F.mse_loss(reference(blurred), theirs),
                                   rtol=1e-4, atol=0)


def test_only_the_layers_up_to_relu2_2_are_kept(perceptual):
    torchvision_count = sum(p.numel() for p in torchvision.models.vgg16().features[:9].parameters())
    assert sum(p.numel() for p in perceptual.parameters()) == torchvision_count
    assert sum(b.numel() for b in perceptual.buffers()) == 6  # the per-channel scale and shift of the input


# --- gradients and modes ----------------------------------------------------------------------------------------
def test_gradients_reach_the_prediction_but_no_vgg_parameter(perceptual, faces):
    pred = gaussian_blur(faces).requires_grad_()
    target = faces.clone().requires_grad_()  # even a target that asks for gradients is treated as a constant
    perceptual(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert all(not p.requires_grad and p.grad is None for p in perceptual.parameters())


def test_gradient_matches_finite_differences(vgg16_weights):
    loss = PerceptualLoss(vgg16_weights).double()
    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    target = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,))


@pytest.mark.parametrize("build", [PerceptualLoss, lambda w: MixedLoss(1.0, w)], ids=["perceptual", "mixed"])
def test_vgg_stays_in_eval_mode_when_the_loss_is_trained(vgg16_weights, build):
    loss = build(vgg16_weights).train()
    (inner,) = [m for m in loss.modules() if isinstance(m, PerceptualLoss)]
    assert loss.training and inner.training
    assert not any(m.training for m in inner.vgg.modules())


# --- efficiency paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_gives_the_same_loss_and_stays_channels_last(vgg16_weights, faces, device):
    loss = PerceptualLoss(vgg16_weights).to(device)
    x, y = gaussian_blur(faces).to(device), faces.to(device)
    x_cl, y_cl = (t.to(memory_format=torch.channels_last) for t in (x, y))
    with torch.no_grad():
        assert loss.features(x_cl).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(loss(x_cl, y_cl), loss(x, y), rtol=1e-4, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocast_is_close_to_float32_and_keeps_gradients(vgg16_weights, faces, device):
    loss = PerceptualLoss(vgg16_weights).to(device)
    pred, target = gaussian_blur(faces).to(device).requires_grad_(), faces.to(device)
    full = loss(pred, target)
    with torch.autocast(device, dtype=torch.bfloat16):
        half = loss(pred, target)
    assert half.dtype == torch.float32  # mse_loss is computed in float32 under autocast
    assert half.item() == pytest.approx(full.item(), rel=0.03)
    half.backward()
    assert pred.grad.dtype == torch.float32 and pred.grad.abs().sum() > 0


# --- mixed loss and make_loss -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_mixed_loss_is_rho_pixel_plus_perceptual(vgg16_weights, perceptual, faces, rho):
    blurred = gaussian_blur(faces)
    expected = rho * F.mse_loss(blurred, faces) + perceptual(blurred, faces)
    torch.testing.assert_close(MixedLoss(rho, vgg16_weights)(blurred, faces), expected)


@pytest.mark.parametrize("rho", [-0.5, float("nan")])
def test_mixed_loss_rejects_a_bad_rho(vgg16_weights, rho):
    with pytest.raises(ValueError, match="rho"):
        MixedLoss(rho, vgg16_weights)


def test_make_loss_builds_each_loss_by_name(vgg16_weights):
    assert isinstance(make_loss("pixel"), PixelLoss)
    assert isinstance(make_loss("perceptual", weights=vgg16_weights), PerceptualLoss)
    mixed = make_loss("mixed", weights=vgg16_weights)
    assert isinstance(mixed, MixedLoss) and mixed.rho == 1.0
    assert make_loss("mixed", rho=0, weights=vgg16_weights).rho == 0.0


@pytest.mark.parametrize("name, rho, message", [("l1", None, "unknown loss"), ("pixel", 1.0, "rho"),
                                                ("perceptual", 0.5, "rho")])
def test_make_loss_rejects_bad_requests(name, rho, message):
    with pytest.raises(ValueError, match=message):
        make_loss(name, rho=rho)


def test_the_pixel_loss_needs_no_vgg16(monkeypatch):
    monkeypatch.delenv(VGG16_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded VGG16"))
    assert make_loss("pixel")(torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)).item() == 1


# --- input checks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pred, target, message", [
    (torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 8), "same shape"),
    (torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 16), r"\[B, 3, H, W\]"),
    (torch.zeros(3, 16, 16), torch.zeros(3, 16, 16), r"\[B, 3, H, W\]"),
])
def test_perceptual_loss_rejects_bad_images(perceptual, pred, target, message):
    with pytest.raises(ValueError, match=message):
        perceptual(pred, target)


# --- where the weights come from --------------------------------------------------------------------------------
def test_the_three_state_dict_layouts_give_the_same_weights(vgg16_weights, tmp_path):
    relu2_2 = reference_relu2_2_state(vgg16_weights)
    layouts = {
        "features.pth": torch.load(vgg16_weights, weights_only=True),  # vgg16().features, 0.weight … 28.bias
        "relu2_2.pth": relu2_2,  # features[:9]
        "model.pth": {**{f"features.{k}": v for k, v in relu2_2.items()},  # vgg16(), features.* and classifier.*
                      "classifier.0.weight": torch.zeros(4, 2)},
    }
    for name, state in layouts.items():
        torch.save(state, tmp_path / name)
        loaded = losses.vgg16_weights(tmp_path / name)
        assert loaded.keys() == relu2_2.keys(), name
        assert all(torch.equal(loaded[k], relu2_2[k]) for k in relu2_2), name


def test_environment_variable_is_used_without_an_argument(vgg16_weights, monkeypatch, tmp_path):
    monkeypatch.setenv(VGG16_ENV, str(vgg16_weights))
    assert all(torch.equal(a, b) for a, b in zip(losses.vgg16_weights(None).values(),
                                                 reference_relu2_2_state(vgg16_weights).values()))
    monkeypatch.setenv(VGG16_ENV, str(tmp_path / "elsewhere.pth"))
    with pytest.raises(FileNotFoundError, match="elsewhere.pth"):
        PerceptualLoss()


def test_explicit_argument_wins_over_the_environment(vgg16_weights, monkeypatch, tmp_path):
    monkeypatch.setenv(VGG16_ENV, str(tmp_path / "elsewhere.pth"))
    PerceptualLoss(vgg16_weights)  # does not look at the variable


def test_torchvision_download_is_the_last_resort(vgg16_weights, monkeypatch):
    calls = []
    full_model = {f"features.{k}": v for k, v in reference_relu2_2_state(vgg16_weights).items()}

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return full_model

    monkeypatch.delenv(VGG16_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    loss = PerceptualLoss()
    (url, kwargs), = calls
    assert url == VGG16_Weights.IMAGENET1K_V1.url
    assert kwargs["weights_only"] and kwargs["check_hash"]
    assert torch.equal(loss.vgg[7].weight, full_model["features.7.weight"])


def test_a_failed_download_says_how_to_work_offline(monkeypatch):
    def no_network(url, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv(VGG16_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(DownloadError, match=VGG16_ENV):
        PerceptualLoss()


def test_importing_the_module_reads_and_downloads_nothing(tmp_path):
    code = ("import torch, torch.hub\n"
            "def boom(*a, **k): raise SystemExit('load at import')\n"
            "torch.hub.load_state_dict_from_url = torch.load = boom\n"
            "import cae_course.losses\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, VGG16_ENV: str(tmp_path / "absent.pth")})
    assert result.returncode == 0, result.stderr


def save_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


BAD_FILES = {  # name → (how to write it into a folder, the error, words the message must contain)
    "missing": (lambda d: d / "missing.pth", FileNotFoundError, "does not exist"),
    "a directory": (lambda d: d, FileNotFoundError, "does not exist"),
    "text": (lambda d: save_bytes(d / "notes.pth", b"not weights at all"), ValueError, "not a readable PyTorch file"),
    "empty": (lambda d: save_bytes(d / "empty.pth", b""), ValueError, "not a readable PyTorch file"),
    "truncated": (lambda d: truncated_copy(d / "half.pth"), ValueError, "not a readable PyTorch file"),
    "a pickled module": (lambda d: saved(torch.nn.Linear(2, 2), d / "module.pth"), ValueError,
                         "not a readable PyTorch file"),
    "a tensor": (lambda d: saved(torch.zeros(3), d / "tensor.pth"), ValueError, "holds a Tensor"),
    "other keys": (lambda d: saved({"conv1.weight": torch.zeros(64, 3, 7, 7)}, d / "resnet.pth"), ValueError,
                   "lacks"),
    "wrong shapes": (lambda d: saved({**vgg16_relu2_2().state_dict(), "5.weight": torch.zeros(128, 64, 5, 5)},
                                     d / "shapes.pth"), ValueError, r"5\.weight is \(128, 64, 5, 5\), expected"),
    "not tensors": (lambda d: saved({k: 0.0 for k in vgg16_relu2_2().state_dict()}, d / "floats.pth"), ValueError,
                    "0.weight is"),
}


def saved(obj, path):
    torch.save(obj, path)
    return path


def truncated_copy(path):
    torch.save(vgg16_relu2_2().state_dict(), path)
    return save_bytes(path, path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_weights_file_is_named_in_a_clear_error(case, tmp_path):
    make, error, words = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(error, match=words) as info:
        PerceptualLoss(path)
    assert str(path) in str(info.value)
