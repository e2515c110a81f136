"""cae_course.wild: 8-bit rounding, JPEG, tool-sized blurs, pixelation at any grid phase against a plain per-block
loop, rescaling, and the seeded wild test suite."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from cae_course.data import normalize, split_faces
from cae_course.obfuscate import gaussian_blur, pixelate
from cae_course.wild import (WILD_SUITE, blur, blur_kernel_size, jpeg, pixelate_grid, quantize8, rescale, to_uint8,
                             wild_obfuscate)


def images(shape, seed=0) -> torch.Tensor:
    "Random images in [-1, 1]."
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_quantize8_is_rounding_to_256_levels_and_idempotent():
    x = images((2, 3, 9, 7))
    q = quantize8(x)
    assert torch.equal(quantize8(q), q)
    assert (q - x).abs().max() <= 1 / 255 + 1e-12
    levels = (q + 1) / 2 * 255
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert torch.equal(to_uint8(torch.tensor([[[[-2.0, 1.5]]]])), torch.tensor([[[[0, 255]]]], dtype=torch.uint8))


def test_jpeg_matches_pillow_round_trip():
    x = images((2, 3, 24, 32)).float()
    out = jpeg(x, 60)
    for i in range(2):
        buf = io.BytesIO()
        Image.fromarray(to_uint8(x)[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=60)
        expected = normalize(torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1))
        assert torch.equal(out[i], expected)
    assert jpeg(x[:, :1], 60).shape == (2, 1, 24, 32)


@pytest.mark.parametrize("bad", [lambda x: jpeg(x, 0), lambda x: jpeg(x, 96), lambda x: jpeg(x[:, :2]),
                                 lambda x: jpeg(x[0])])
def test_jpeg_refuses_bad_input(bad):
    with pytest.raises(ValueError):
        bad(images((1, 3, 8, 8)).float())


def test_blur_kernel_size_is_opencv_rule():
    assert [blur_kernel_size(s) for s in (0.5, 1.0, 1.5, 2, 3, 4, 6, 8)] == [5, 7, 11, 13, 19, 25, 37, 49]
    x = images((1, 3, 60, 60))
    assert torch.equal(blur(x, 2.0), gaussian_blur(x, 13, 2.0))
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="sigma"):
            blur(x, bad)


def pixelate_loop(x: torch.Tensor, n: int, dy: int, dx: int) -> torch.Tensor:
    "Reference: one block at a time, boundaries on rows ≡ dy and columns ≡ dx (mod n)."
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    rows = [0] + list(range(dy if dy else n, h, n)) + [h]
    cols = [0] + list(range(dx if dx else n, w, n)) + [w]
    for r0, r1 in zip(rows, rows[1:]):
        for c0, c1 in zip(cols, cols[1:]):
            out[..., r0:r1, c0:c1] = x[..., r0:r1, c0:c1].mean((-2, -1), keepdim=True)
    return out


@pytest.mark.parametrize("n,phase", [(4, (0, 0)), (4, (1, 3)), (8, (7, 2)), (5, (3, 0)), (12, (11, 6)), (1, (0, 0))])
def test_pixelate_grid_matches_a_block_loop(n, phase):
    x = images((2, 3, 23, 30))
    torch.testing.assert_close(pixelate_grid(x, n, phase), pixelate_loop(x, n, *phase), rtol=0, atol=1e-12)


def test_pixelate_grid_phase_zero_is_chapter_02():
    x = images((2, 3, 20, 20)).float()
    assert torch.equal(pixelate_grid(x, 6), pixelate(x, 6))


@pytest.mark.parametrize("block,phase", [(0, (0, 0)), (-2, (0, 0)), (4, (4, 0)), (4, (0, -1)), (4, (1,)), (2.5, (0, 0))])
def test_pixelate_grid_refuses_bad_grids(block, phase):
    with pytest.raises(ValueError):
        pixelate_grid(images((1, 3, 8, 8)), block, phase)


def test_rescale():
    x = images((2, 3, 40, 40))
    torch.testing.assert_close(rescale(x, 1.0), x, rtol=0, atol=1e-5)
    assert rescale(x, 1.3, 24).shape == (2, 3, 24, 24)
    assert rescale(x, 0.7).shape == x.shape
    with pytest.raises(ValueError, match="factor"):
        rescale(x, 0)


def test_suite_definition():
    names = [s.name for s in WILD_SUITE]
    assert len(names) == len(set(names)) == 26
    blurs = {(s.sigma, s.kernel_size) for s in WILD_SUITE if s.kind == "blur"}
    assert blurs == {(1.5, 11), (2, 13), (3, 19), (4, 25), (6, 37), (8, 49), (4.0, 9)}
    assert {s.block for s in WILD_SUITE if s.kind == "pixelate"} == {4, 6, 8, 10, 12, 16}
    assert sum(s.quality == 75 for s in WILD_SUITE) == 13


def test_wild_obfuscate_is_8bit_seeded_and_reports_the_truth(lfw):
    faces = split_faces(lfw, "test", 12)
    x, truth = wild_obfuscate(faces, "pixelate-n10")
    assert torch.equal(quantize8(x), x)
    again, truth2 = wild_obfuscate(faces, "pixelate-n10")
    assert torch.equal(x, again) and torch.equal(truth["phase"], truth2["phase"])
    assert not torch.equal(truth["phase"], wild_obfuscate(faces, "pixelate-n10", seed=1)[1]["phase"])
    assert ((truth["phase"] >= 0) & (truth["phase"] < 10)).all() and len(truth["phase"].unique(dim=0)) > 1
    for i in range(3):
        expected = quantize8(pixelate_grid(normalize(faces[i:i + 1]), 10, tuple(truth["phase"][i].tolist())))
        assert torch.equal(x[i:i + 1], expected)
    blurred, t = wild_obfuscate(faces, "blur-s3-jpeg75")
    assert torch.equal(t["sigma"], torch.full((12,), 3.0)) and torch.equal(t["kernel_size"], torch.full((12,), 19))
    assert torch.equal(blurred, jpeg(blur(normalize(faces), 3.0), 75))
    with pytest.raises(ValueError, match="unknown wild setting"):
        wild_obfuscate(faces, "blur-s5")


def test_a_model_method_runs_without_autograd():
    "The suite's models run under no_grad: a graph kept per chunk held 13 GB for 441 faces of the privacy frontier."
    from cae_course.verdict import model_method

    model = torch.nn.Conv2d(3, 3, 3, padding=1)
    restored = model_method("conv", model, "blur", batch_size=2).restore(torch.zeros(5, 3, 8, 8), {}, None)
    assert restored.shape == (5, 3, 8, 8) and not restored.requires_grad
