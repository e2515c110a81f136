"""cae_course.obfuscate against independent references: SciPy's and torchvision's Gaussian blurs, and a plain
per-block loop for pixelation."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torchvision.transforms.functional import gaussian_blur as tv_gaussian_blur

from cae_course.obfuscate import gaussian_blur, gaussian_kernel1d, obfuscate, pixelate

BLURS = [(9, 4.0), (9, 2.0), (5, 1.0), (3, 0.5), (1, 1.0), (15, 6.0)]


def images(shape, dtype=torch.float64, seed=0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kernel_size,sigma", BLURS)
@pytest.mark.parametrize("size", [(16, 16), (17, 23)])
def test_blur_matches_scipy(kernel_size, sigma, size):
    "SciPy's 'mirror' mode is torch's 'reflect'; `radius` cuts its Gaussian at the same tap."
    x = images((2, 3, *size))
    r = kernel_size // 2
    expected = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", radius=(0, 0, r, r))
    np.testing.assert_allclose(gaussian_blur(x, kernel_size, sigma).numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size,sigma", BLURS)
def test_blur_matches_torchvision(kernel_size, sigma):
    x = images((4, 3, 40, 33), torch.float32)
    expected = tv_gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])
    torch.testing.assert_close(gaussian_blur(x, kernel_size, sigma), expected, rtol=0, atol=1e-6)


def test_blur_on_real_faces_matches_torchvision(lfw):
    x = lfw.images[:16].float() / 255
    torch.testing.assert_close(gaussian_blur(x), tv_gaussian_blur(x, [9, 9], [4.0, 4.0]), rtol=0, atol=1e-6)


def naive_pixelate(x: np.ndarray, block: int) -> np.ndarray:
    "The definition, pixel block by pixel block: each square (cut by the border) gets the mean of its own pixels."
    out = np.empty_like(x)
    height, width = x.shape[-2:]
    for top in range(0, height, block):
        for left in range(0, width, block):
            square = x[..., top:top + block, left:left + block]
            out[..., top:top + block, left:left + block] = square.mean(axis=(-2, -1), keepdims=True)
    return out


@pytest.mark.parametrize("size,block", [((16, 16), 8), ((112, 112), 8), ((112, 112), 12), ((19, 13), 4),
                                        ((19, 13), 5), ((7, 30), 8), ((10, 10), 1), ((9, 6), 20)])
def test_pixelate_matches_naive_loop(size, block):
    x = images((2, 3, *size))
    np.testing.assert_allclose(pixelate(x, block).numpy(), naive_pixelate(x.numpy(), block), rtol=0, atol=1e-12)


def test_pixelate_real_faces(lfw):
    x = lfw.images[:8].float() / 255
    np.testing.assert_allclose(pixelate(x, 8).numpy(), naive_pixelate(x.numpy(), 8), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fn", [lambda t: gaussian_blur(t, 5, 1.5), lambda t: gaussian_blur(t, 9, 4.0),
                                lambda t: pixelate(t, 3), lambda t: pixelate(t, 4)])
def test_gradients_flow(fn):
    x = images((2, 2, 9, 7)).requires_grad_()
    assert torch.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("fn", [gaussian_blur, pixelate])
def test_keeps_shape_and_dtype(dtype, fn):
    x = images((3, 3, 24, 20), dtype=torch.float32).to(dtype)
    y = fn(x)
    assert y.shape == x.shape and y.dtype == dtype
    torch.testing.assert_close(y.float(), fn(x.float()), rtol=0, atol=2e-2)  # low precision, same result


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fn", [gaussian_blur, lambda t: pixelate(t, 12)])
def test_cuda_matches_cpu(fn):
    x = images((4, 3, 112, 112), torch.float32)
    torch.testing.assert_close(fn(x.cuda()).cpu(), fn(x), rtol=0, atol=1e-5)


def test_obfuscations_commute_with_normalisation():
    "Both are linear and keep constants, so obfuscating before or after x ↦ 2x − 1 is the same."
    x = images((2, 3, 32, 32), torch.float32)
    for fn in (gaussian_blur, pixelate):
        torch.testing.assert_close(fn(2 * x - 1), 2 * fn(x) - 1, rtol=0, atol=1e-5)


def test_obfuscate_dispatches_by_name():
    x = images((2, 3, 32, 32), torch.float32)
    torch.testing.assert_close(obfuscate(x, "blur"), gaussian_blur(x, 9, 4.0), rtol=0, atol=0)
    torch.testing.assert_close(obfuscate(x, "blur", sigma=2.0, kernel_size=5), gaussian_blur(x, 5, 2.0), rtol=0, atol=0)
    torch.testing.assert_close(obfuscate(x, "pixelate", block=4), pixelate(x, 4), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown obfuscation 'mosaic'"):
        obfuscate(x, "mosaic")


def test_kernel_is_a_normalised_gaussian():
    k = gaussian_kernel1d(9, 4.0, torch.float64)
    offsets = torch.arange(-4, 5, dtype=torch.float64)
    torch.testing.assert_close(k, torch.exp(-offsets**2 / 32) / torch.exp(-offsets**2 / 32).sum())


@pytest.mark.parametrize("kernel_size,sigma,message", [
    (9, 0.0, "sigma"), (9, -1.0, "sigma"), (9, float("nan"), "sigma"), (9, float("inf"), "sigma"),
    (8, 4.0, "odd"), (0, 4.0, "odd"), (-3, 4.0, "odd"), (9.0, 4.0, "odd"), (31, 4.0, "too large"),
])
def test_blur_rejects_bad_parameters(kernel_size, sigma, message):
    with pytest.raises(ValueError, match=message):
        gaussian_blur(images((1, 3, 12, 20), torch.float32), kernel_size, sigma)


@pytest.mark.parametrize("block", [0, -8, 2.5, True])
def test_pixelate_rejects_bad_block(block):
    with pytest.raises(ValueError, match="block"):
        pixelate(images((1, 3, 16, 16), torch.float32), block)


@pytest.mark.parametrize("fn", [gaussian_blur, pixelate])
@pytest.mark.parametrize("x,message", [
    (torch.rand(3, 16, 16), "rank 4"), (torch.rand(1, 1, 3, 16, 16), "rank 4"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "floating-point"), (np.zeros((1, 3, 16, 16)), "torch.Tensor"),
])
def test_rejects_bad_images(fn, x, message):
    with pytest.raises(ValueError, match=message):
        fn(x)


def test_accepts_numpy_scalars():
    "Parameters from NumPy (a slider, a config array) work like Python numbers."
    x = images((1, 3, 20, 20), torch.float32)
    torch.testing.assert_close(gaussian_blur(x, np.int64(9), np.float32(4.0)), gaussian_blur(x, 9, 4.0))
    torch.testing.assert_close(pixelate(x, np.int64(6)), pixelate(x, 6))
