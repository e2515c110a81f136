"""cae_course.classical against scikit-image's `restoration` (Wiener, Richardson–Lucy), the quality a broken method
would miss on real faces, the estimators on the wild suite, failure modes, and the model-name registry."""
import json

import numpy as np
import pytest
import torch
from skimage import restoration

from cae_course.classical import (CLASSICAL, block_means_matrix, classical_model, estimate_blur, estimate_grid,
                                  gaussian_psf, lanczos, lanczos_blind, richardson_lucy, transfer_function, wiener)
from cae_course.cli import main
from cae_course.data import denormalize, normalize, split_faces
from cae_course.metrics import psnr
from cae_course.obfuscate import gaussian_blur, pixelate
from cae_course.train import evaluate, load_model
from cae_course.wild import pixelate_grid, quantize8, wild_obfuscate


def images(shape, seed=0) -> torch.Tensor:
    "Random smooth-ish images in [-1, 1], float64."
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return gaussian_blur(x, 5, 1.0) * 2 - 1


@pytest.fixture(scope="module")
def faces(lfw) -> torch.Tensor:
    "16 test faces in [-1, 1]."
    return normalize(split_faces(lfw, "test", 16))


def db(x, y) -> float:
    return psnr(denormalize(x), denormalize(y)).mean().item()


def test_transfer_function_is_skimage_ir2tf():
    from skimage.restoration import uft

    psf = gaussian_psf(2.0, 7).numpy()
    np.testing.assert_allclose(transfer_function(torch.from_numpy(psf), (30, 41)).numpy(), uft.ir2tf(psf, (30, 41)),
                               atol=1e-12)


@pytest.mark.parametrize("sigma,kernel_size,balance", [(4.0, 9, 1e-3), (2.0, None, 1e-2), (1.5, 11, 3e-4)])
def test_wiener_matches_skimage_on_the_mirror_period(sigma, kernel_size, balance):
    x = images((1, 2, 40, 37))
    for c in range(2):
        period = np.pad(x[0, c].numpy(), ((0, 38), (0, 35)), mode="reflect")  # x0 … x(H−1) x(H−2) … x1
        expected = restoration.wiener(period, gaussian_psf(sigma, kernel_size).numpy(), balance)[:40, :37]
        np.testing.assert_allclose(wiener(x, sigma, kernel_size, balance)[0, c].numpy(), expected, atol=1e-10)


def test_richardson_lucy_matches_skimage():
    x = denormalize(images((1, 1, 30, 30))).clamp(0, 1)
    psf = gaussian_psf(2.0, 9).numpy()
    expected = restoration.richardson_lucy(np.pad(x[0, 0].numpy(), 10, mode="reflect"), psf, num_iter=7, clip=False)
    np.testing.assert_allclose(denormalize(richardson_lucy(normalize(x), 2.0, 9, iterations=7, pad=10))[0, 0].numpy(),
                               expected[10:-10, 10:-10], atol=1e-10)


def test_wiener_inverts_the_float_blur_but_not_the_8bit_one(faces):
    exact = wiener(gaussian_blur(faces.double()), balance=1e-9)
    assert db(exact, faces.double()) > 60
    assert db(wiener(quantize8(gaussian_blur(faces))), faces) < 40


def test_wiener_beats_the_8bit_input_by_5db(faces):
    blurred = quantize8(gaussian_blur(faces))
    assert db(wiener(blurred), faces) > db(blurred, faces) + 5


def test_richardson_lucy_improves_the_8bit_input(faces):
    blurred = quantize8(gaussian_blur(faces[:4]))
    assert db(richardson_lucy(blurred), faces[:4]) > db(blurred, faces[:4]) + 2


def test_lanczos_beats_nearest_neighbour_and_keeps_the_means(faces):
    mosaic = quantize8(pixelate(faces, 8))  # the mosaic is the nearest-neighbour upsampling of the block means
    restored = lanczos(mosaic)
    assert db(restored, faces) > db(mosaic, faces) + 1.5
    assert (pixelate(restored, 8) - mosaic).abs().mean() < 0.25 * 2 / 255  # the means kept, but for clipping
    shifted = quantize8(pixelate_grid(faces, 6, (2, 5)))
    assert db(lanczos(shifted, 6, (2, 5)), faces) > db(shifted, faces) + 1.5


def test_block_means_matrix_averages_cut_blocks():
    d = block_means_matrix(10, 4, 1)  # blocks: [0], [1..4], [5..8], [9]
    assert d.shape == (4, 10)
    torch.testing.assert_close(d @ torch.arange(10.0, dtype=torch.float64), torch.tensor([0, 2.5, 6.5, 9], dtype=torch.float64))


@pytest.mark.parametrize("call", [
    lambda x: wiener(x, sigma=0), lambda x: wiener(x, sigma=-2.0), lambda x: wiener(x, kernel_size=8),
    lambda x: wiener(x[0]), lambda x: wiener(x[..., :1]), lambda x: richardson_lucy(x, pad=-1), lambda x: richardson_lucy(x, iterations=-1), lambda x: richardson_lucy(x, sigma=float("nan")),
    lambda x: lanczos(x, 0), lambda x: lanczos(x, -3), lambda x: lanczos(x, 8, (8, 0)), lambda x: lanczos(x, steps=-1),
    lambda x: lanczos(x.long()), lambda x: estimate_grid(x, max_block=1), lambda x: estimate_blur(x[0, 0]),
    lambda x: classical_model("deconvolve"),
])
def test_bad_input_is_a_clear_value_error(call):
    with pytest.raises(ValueError):
        call(images((1, 3, 32, 32)))


def test_estimate_grid_is_exact_on_the_suite(lfw):
    faces16 = split_faces(lfw, "test", 16)
    for name in ("pixelate-n4", "pixelate-n10", "pixelate-n16", "pixelate-n8-jpeg75"):
        x, truth = wild_obfuscate(faces16, name)
        blocks, phases = estimate_grid(x)
        assert torch.equal(blocks, truth["block"]), name
        assert torch.equal(phases, truth["phase"]), name


def test_estimate_blur_recognises_the_papers_kernel_and_opencv_sigmas(faces):
    est = estimate_blur(quantize8(gaussian_blur(faces)))
    assert ((est[:, 0] == 9) & (est[:, 1] == 4)).float().mean() >= 0.9
    x, truth = wild_obfuscate(faces, "blur-s2")
    assert ((estimate_blur(x)[:, 1] - 2).abs() <= 0.5).float().mean() >= 0.8


def test_lanczos_blind_equals_lanczos_with_the_truth(lfw):
    x, truth = wild_obfuscate(split_faces(lfw, "test", 6), "pixelate-n6")
    for i in range(6):
        expected = lanczos(x[i:i + 1], 6, tuple(truth["phase"][i].tolist()))
        torch.testing.assert_close(lanczos_blind(x)[i:i + 1], expected, rtol=0, atol=1e-6)


def test_classical_models_load_and_evaluate_like_shipped_ones(lfw):
    images8 = split_faces(lfw, "test", 8)
    for name in CLASSICAL:
        model, cfg = load_model(name)
        assert cfg.obfuscation == CLASSICAL[name][0] and not cfg.bf16
        scores = evaluate(model, images8[:4], cfg)
        assert scores["psnr"] > scores["input_psnr"] + 1, (name, scores)
    with pytest.raises(FileNotFoundError, match="wiener"):
        load_model("no-such-model")


def test_cli_evaluates_a_classical_method(tmp_path, capsys):
    out = tmp_path / "lanczos.json"
    assert main(["evaluate", "lanczos", "-n", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "lanczos" and result["images"] == 8
    assert result["psnr"] > result["input_psnr"] + 1.5
