"""cae_course.photo's photo reading (used by the demo and deobfuscate): a face anywhere in a photo is found and framed like LFW; without a face (or with
`--no-detect`) the centre square is used."""
import numpy as np
import pytest
from PIL import Image

from cae_course import inplace
from cae_course import photo as photo_module
from cae_course.cli import main
from cae_course.photo import crop_box, load_image

CANVAS = (900, 700)  # a larger photo to paste LFW photos into


def pasted(
    photo: Image.Image,  # a 250×250 LFW photo
    scale: float,  # resize it by this factor
    at: tuple[int, int],  # then paste its top-left corner here
) -> Image.Image:
    "The LFW photo, resized and pasted into a grey-green canvas."
    canvas = Image.new("RGB", CANVAS, (90, 110, 90))
    canvas.paste(photo.resize((round(250 * scale),) * 2, Image.BICUBIC), at)
    return canvas


@pytest.mark.parametrize("scale, at", [(0.6, (40, 420)), (1.0, (600, 30)), (1.7, (300, 200))])
def test_lfw_photos_pasted_anywhere_are_cut_back_to_lfw_framing(lfw_photo_sample, scale, at):
    centre_errors, side_ratios = [], []
    for photo in lfw_photo_sample:
        left, top, right, bottom = crop_box(pasted(photo, scale, at), 64)
        centre = np.array([(left + right) / 2 - at[0], (top + bottom) / 2 - at[1]]) / scale  # in the LFW photo's pixels
        centre_errors.append(np.abs(centre - 125).max())
        side_ratios.append((right - left) / scale / 64)
    # LFW's own framing varies from photo to photo (experiments/face_framing.py): loose bounds for each photo,
    # tight ones for the median
    assert max(centre_errors) < 14 and all(0.75 < r < 1.35 for r in side_ratios), (centre_errors, side_ratios)
    assert np.median(centre_errors) < 5 and abs(np.median(side_ratios) - 1) < 0.08, (centre_errors, side_ratios)


def test_the_cut_face_looks_like_the_lfw_crop(lfw_photo_sample, tmp_path):
    photo = lfw_photo_sample[0]
    pasted(photo, 1.4, (200, 150)).save(tmp_path / "photo.png")
    lfw_crop = np.array(photo.crop((93, 93, 157, 157))).transpose(2, 0, 1).astype(float)
    assert np.abs(load_image(tmp_path / "photo.png", 64) - lfw_crop).mean() < 25
    assert np.abs(load_image(tmp_path / "photo.png", 64, detect=False) - lfw_crop).mean() > 40


def test_without_a_face_the_centre_square_is_used_and_said(tmp_path, capsys):
    pixels = np.zeros((120, 200, 3), np.uint8)
    pixels[:, 40:160] = np.linspace(0, 255, 120, dtype=np.uint8)[:, None, None]  # the centre square: a vertical ramp
    Image.fromarray(pixels).save(tmp_path / "ramp.png")
    image = load_image(tmp_path / "ramp.png", 60)
    assert capsys.readouterr().err.strip() == "ramp.png: no face found; using the centre square of the photo"
    assert np.array_equal(image, load_image(tmp_path / "ramp.png", 60, detect=False))
    assert image[:, :, 0].mean() > 0 and abs(image[0, :, 0].mean() - 127) < 5  # no black border
    assert capsys.readouterr().err == ""  # detect=False: no detection, no message


@pytest.mark.parametrize("command", ["deobfuscate", "demo"])
def test_no_detect_takes_the_centre_square_without_looking_for_a_face(lfw_photo_sample, tmp_path, monkeypatch, command):
    pasted(lfw_photo_sample[0], 1.0, (600, 30)).save(tmp_path / "photo.png")

    def no_detector(*args):
        raise AssertionError("--no-detect still looked for a face")

    monkeypatch.setattr(photo_module, "find_face", no_detector)  # the demo's
    monkeypatch.setattr(inplace, "face_boxes", no_detector)  # deobfuscate's
    args = {"deobfuscate": ["deobfuscate", "cae-pixel-blur", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out")],
            "demo": ["demo", str(tmp_path / "photo.png"), "--models", "cae-pixel-blur", "--out", str(tmp_path / "d.png")]}
    assert main([*args[command], "--no-detect"]) == 0
    with pytest.raises(AssertionError, match="still looked"):
        main(args[command])
