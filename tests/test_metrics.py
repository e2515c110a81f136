"""cae_course.metrics against scikit-image's peak_signal_noise_ratio and structural_similarity, on random images
and on real LFW faces, plus the failure modes."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cae_course.metrics import psnr, ssim, ssim_map
from cae_course.obfuscate import gaussian_blur, pixelate

SKIMAGE_SSIM = dict(channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def reference(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    "scikit-image's PSNR and SSIM of each pair, in float64, one image at a time."
    hwc = lambda t: t.permute(0, 2, 3, 1).double().numpy()
    pairs = list(zip(hwc(x), hwc(y)))
    return (np.array([peak_signal_noise_ratio(b, a, data_range=data_range) for a, b in pairs]),
            np.array([structural_similarity(a, b, data_range=data_range, **SKIMAGE_SSIM) for a, b in pairs]))


def random_pairs(shape, dtype=torch.float64, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    "Random images and a noisy version of them, both in [0, 1]."
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=dtype)
    return x, (x + 0.2 * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (3, 3, 11, 11), (2, 3, 40, 27), (2, 1, 20, 20)])
def test_matches_skimage_on_random_images_float64(shape):
    x, y = random_pairs(shape)
    ref_psnr, ref_ssim = reference(x, y)
    np.testing.assert_allclose(psnr(x, y).numpy(), ref_psnr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ssim(x, y).numpy(), ref_ssim, rtol=0, atol=1e-12)


def test_matches_skimage_on_random_images_float32():
    x, y = random_pairs((8, 3, 64, 64))
    ref_psnr, ref_ssim = reference(x, y)
    np.testing.assert_allclose(psnr(x.float(), y.float()).numpy(), ref_psnr, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ssim(x.float(), y.float()).numpy(), ref_ssim, rtol=0, atol=1e-4)


@pytest.mark.parametrize("obfuscation", [gaussian_blur, pixelate, lambda t: gaussian_blur(t, 5, 1.0),
                                         lambda t: (t + 0.03).clamp(0, 1)])
def test_matches_skimage_on_real_faces(lfw, obfuscation):
    "float32, as the course computes it, against scikit-image's float64 on 48 real 112×112 faces."
    clean = lfw.images[torch.linspace(0, len(lfw) - 1, 48).long()].float() / 255
    other = obfuscation(clean)
    ref_psnr, ref_ssim = reference(other, clean)
    np.testing.assert_allclose(psnr(other, clean).numpy(), ref_psnr, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ssim(other, clean).numpy(), ref_ssim, rtol=0, atol=1e-4)


def test_data_range_255_matches_skimage():
    "uint8 images with data_range=255 are converted to float, not subtracted as wrapping integers."
    x, y = random_pairs((3, 3, 24, 24))
    x8, y8 = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    ref_psnr, ref_ssim = reference(x8.double(), y8.double(), data_range=255)
    np.testing.assert_allclose(psnr(x8, y8, data_range=255).numpy(), ref_psnr, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ssim(x8, y8, data_range=255).numpy(), ref_ssim, rtol=0, atol=1e-5)


def test_single_image_gives_a_scalar():
    x, y = random_pairs((2, 3, 16, 16))
    assert psnr(x[1], y[1]).shape == () and ssim(x[1], y[1]).shape == ()
    torch.testing.assert_close(psnr(x[1], y[1]), psnr(x, y)[1])
    torch.testing.assert_close(ssim(x[1], y[1]), ssim(x, y)[1])


@pytest.mark.parametrize("batch_size", [1, 3, 16, 100])
def test_ssim_batch_size_changes_nothing(batch_size):
    x, y = random_pairs((7, 3, 16, 16))
    torch.testing.assert_close(ssim(x, y, batch_size=batch_size), ssim_map(x, y).mean((1, 2, 3)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_ssim_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), batch_size=batch_size)


def test_identical_images():
    x, _ = random_pairs((3, 3, 16, 16))
    assert torch.equal(psnr(x, x), torch.full((3,), math.inf, dtype=x.dtype))
    torch.testing.assert_close(ssim(x, x), torch.ones(3, dtype=x.dtype))


def test_ssim_map_is_the_valid_region():
    x, y = random_pairs((2, 3, 30, 25))
    assert ssim_map(x, y).shape == (2, 3, 20, 15)
    torch.testing.assert_close(ssim_map(x, y).mean((1, 2, 3)), ssim(x, y))


def test_dtypes():
    x, y = random_pairs((2, 3, 16, 16))
    assert psnr(x.float(), y.float()).dtype == torch.float32 and ssim(x.half(), y.half()).dtype == torch.float32
    assert ssim(x.float(), y).dtype == torch.float64  # float64 wins


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x, y = random_pairs((8, 3, 112, 112), torch.float32)
    torch.testing.assert_close(psnr(x.cuda(), y.cuda()).cpu(), psnr(x, y), rtol=0, atol=1e-4)
    torch.testing.assert_close(ssim(x.cuda(), y.cuda()).cpu(), ssim(x, y), rtol=0, atol=1e-5)


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("x,y,message", [
    (torch.rand(2, 3, 16, 16), torch.rand(1, 3, 16, 16), "same shape"),
    (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 17), "same shape"),
    (torch.rand(3, 256), torch.rand(3, 256), r"\[B, C, H, W\]"),
    (torch.rand(1, 2, 3, 16, 16), torch.rand(1, 2, 3, 16, 16), r"\[B, C, H, W\]"),
    (np.zeros((1, 3, 16, 16)), torch.rand(1, 3, 16, 16), "torch.Tensor"),
    (torch.rand(0, 3, 16, 16), torch.rand(0, 3, 16, 16), "no pixels"),
])
def test_rejects_bad_inputs(metric, x, y, message):
    with pytest.raises(ValueError, match=message):
        metric(x, y)


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("data_range", [0, -1.0, float("nan"), float("inf")])
def test_rejects_bad_data_range(metric, data_range):
    with pytest.raises(ValueError, match="data_range"):
        metric(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), data_range=data_range)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))


def test_accepts_numpy_scalars():
    x, y = random_pairs((4, 3, 16, 16))
    torch.testing.assert_close(psnr(x, y, data_range=np.float32(1.0)), psnr(x, y))
    torch.testing.assert_close(ssim(x, y, data_range=np.float64(1.0), batch_size=np.int64(3)), ssim(x, y))
