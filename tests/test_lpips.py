"""LPIPS (chapter 10, in cae_course.metrics): the same numbers as the lpips package's own forward pass with the same
VGG16 weights, the properties of a distance, where its weights come from, and clear errors."""
import copy
import warnings

import pytest
import torch

from cae_course.data import DownloadError, split_indices
from cae_course.losses import VGG16_ENV
from cae_course.lpips_metric import LPIPS, lpips_heads, lpips_heads_file, vgg16_relu5_3_weights
from cae_course.obfuscate import gaussian_blur, pixelate

lpips_package = pytest.importorskip("lpips", reason="LPIPS's calibrated heads come from the lpips package")


@pytest.fixture(scope="module")
def metric(vgg16_weights):
    return LPIPS(weights=vgg16_weights)


@pytest.fixture(scope="module")
def faces(lfw):
    "Four clean test faces in [0, 1], and damaged versions of them: blurred, pixelated, noisy."
    _, _, test = split_indices(len(lfw))
    clean = lfw.images[test[:4]].float() / 255
    noise = 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    return clean, [gaussian_blur(clean), pixelate(clean), (clean + noise).clamp(0, 1)]


def package_lpips(weights_file) -> torch.nn.Module:
    "The lpips package's LPIPS-VGG, built without downloading, with the same VGG16 weights loaded into its slices."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips_package.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    ends = (4, 9, 16, 23, 30)
    state = torch.load(weights_file, weights_only=True)
    state = {f"slice{next(s for s, e in enumerate(ends) if int(k.split('.')[0]) < e) + 1}.{k}": v
             for k, v in state.items() if int(k.split(".")[0]) < 30}
    ref.net.load_state_dict(state)
    return ref.eval()


def test_matches_the_lpips_package(metric, faces, vgg16_weights):
    clean, damaged = faces
    ref = package_lpips(vgg16_weights)
    for x in damaged:
        with torch.no_grad():
            expected = ref(x, clean, normalize=True).flatten()
        torch.testing.assert_close(metric(x, clean), expected, atol=1e-5, rtol=1e-4)
        assert (expected > 0.01).all()  # the comparison is not between zeros


def test_distance_properties(metric, faces):
    clean, (blurred, _, _) = faces
    torch.testing.assert_close(metric(clean, clean), torch.zeros(len(clean)), atol=1e-6, rtol=0)
    torch.testing.assert_close(metric(blurred, clean), metric(clean, blurred), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(metric(blurred[0], clean[0]), metric(blurred, clean)[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(metric(blurred, clean, batch_size=3), metric(blurred, clean), atol=1e-6, rtol=1e-5)


def test_grows_with_blur(metric, faces):
    clean, _ = faces
    values = torch.stack([metric(gaussian_blur(clean, 2 * int(3 * s + 0.999) + 1, s), clean) for s in (0.5, 1, 2, 4)])
    assert (values.diff(dim=0) > 0).all()


def test_gradient_reaches_the_image_not_the_network(metric, faces):
    clean, (blurred, _, _) = faces
    x = blurred[:2].clone().requires_grad_()
    metric(x, clean[:2]).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in metric.parameters())
    assert not metric.train().vgg.training  # the backbone stays in eval mode


def test_bad_input(metric, faces):
    clean, _ = faces
    with pytest.raises(ValueError, match="same shape"):
        metric(clean, clean[:, :, :8])
    with pytest.raises(ValueError, match="RGB"):
        metric(clean[:, :1], clean[:, :1])
    with pytest.raises(ValueError, match="16"):
        metric(clean[..., :8, :8], clean[..., :8, :8])
    with pytest.raises(ValueError, match="batch_size"):
        metric(clean, clean, batch_size=0)


def test_weights_from_the_environment(monkeypatch, vgg16_weights):
    monkeypatch.setenv(VGG16_ENV, str(vgg16_weights))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("must not download"))
    state = vgg16_relu5_3_weights()
    assert len(state) == 26 and state["28.bias"].shape == (512,)


def test_download_failure_says_what_to_do(monkeypatch):
    monkeypatch.delenv(VGG16_ENV, raising=False)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DownloadError, match=VGG16_ENV):
        vgg16_relu5_3_weights()


def test_bad_weight_files(tmp_path, vgg16_weights):
    state = torch.load(vgg16_weights, weights_only=True)
    torch.save({k: v for k, v in state.items() if int(k.split(".")[0]) < 9}, tmp_path / "relu2_2.pth")
    with pytest.raises(ValueError, match="relu5_3"):  # enough for the perceptual loss, not for LPIPS
        vgg16_relu5_3_weights(tmp_path / "relu2_2.pth")
    with pytest.raises(FileNotFoundError):
        vgg16_relu5_3_weights(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="readable"):
        vgg16_relu5_3_weights(tmp_path / "junk.pth")
    state["10.weight"] = state["10.weight"][:, :5]
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="10.weight"):
        vgg16_relu5_3_weights(tmp_path / "wrong.pth")


def test_heads(tmp_path):
    heads = lpips_heads()
    assert [len(w) for w in heads] == [64, 128, 256, 512, 512]
    assert all((w >= 0).all() for w in heads)  # the calibration keeps them non-negative: a distance stays ≥ 0
    assert lpips_heads_file().is_file()
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "heads.pth")
    with pytest.raises(ValueError, match="lin1"):
        lpips_heads(tmp_path / "heads.pth")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_on_gpu(metric, faces):
    clean, (blurred, _, _) = faces
    expected = metric(blurred, clean)
    gpu = copy.deepcopy(metric).cuda()
    torch.testing.assert_close(gpu(blurred.cuda(), clean.cuda()).cpu(), expected, atol=1e-4, rtol=1e-3)
