"""The NumPy runtime: the same outputs as the PyTorch models (every shipped one, and fresh ones of every
architecture), the geometry table against torch's layers, no torch in its process, and its one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from cae_course.data import normalize
from cae_course.demo import astronaut_face
from cae_course.models import MODELS, make_model
from cae_course.pack import QUANT_FORMAT, read_packed, save_packed
from cae_course.runtime import ARCHS, CHUNK, GEOMETRY, load_runtime_model, packed_model_names, read_state, weights_dir
from cae_course.shipped import pretrained, pretrained_names

TOLERANCE = 2e-4  # max |NumPy − PyTorch| on images in [-1, 1]


def images(size: int) -> np.ndarray:
    "Two float32 images [2, 3, size, size] in [-1, 1]: the astronaut's face and uniform noise."
    noise = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return torch.stack([normalize(astronaut_face(size)), noise]).numpy()


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    "The model in eval mode with random batch-norm statistics and affine parameters (a fresh one has identities)."
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
    return model.eval()


def test_format_folder_and_archs_are_the_torch_modules():
    import cae_course
    import cae_course.runtime as runtime

    assert runtime.QUANT_FORMAT == QUANT_FORMAT  # the runtime reads what `pack` writes
    assert ARCHS == tuple(MODELS)[:4]  # the autoencoders; then the refiners (chapter 05a)
    assert set(MODELS) == set(ARCHS) | set(runtime.REFINERS)  # every model runs in NumPy, the blind refiners too (09i)
    assert weights_dir() == Path(cae_course.__file__).parent / "weights"
    assert len(packed_model_names()) == len(list(weights_dir().glob("*.json"))) >= 8  # every packed model has its config


def test_read_state_is_read_packed():
    path = weights_dir() / "vcae-pixel-blur.safetensors"
    state, want = read_state(path), read_packed(path)
    assert sorted(state) == sorted(want)
    for k, v in want.items():
        np.testing.assert_array_equal(state[k], v.numpy(), err_msg=k)


@pytest.mark.parametrize("name", pretrained_names())
def test_shipped_model_matches_torch(name):
    x = images(112)
    with torch.no_grad():
        want = pretrained(name)(torch.from_numpy(x)).numpy()
    got = load_runtime_model(name)(x)
    assert got.shape == x.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < TOLERANCE, name


def test_batches_larger_than_a_chunk_and_empty_ones():
    x = np.random.default_rng(0).uniform(-1, 1, (CHUNK + 2, 3, 112, 112)).astype(np.float32)
    with torch.no_grad():
        want = pretrained("cae-pixel-pixelate")(torch.from_numpy(x)).numpy()
    model = load_runtime_model("cae-pixel-pixelate")
    assert np.abs(model(x) - want).max() < TOLERANCE
    assert model(x[:0]).shape == (0, 3, 112, 112)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [64, 65])  # decoder output paddings 0, 1, 0 like 112's, and 0, 1, 1
def test_fresh_model_of_every_arch_matches_torch(arch, size, tmp_path):
    "Every architecture (SkipCAE ships none) at other sizes, random batch norms, packed and read back."
    model = randomized(make_model(arch, image_size=size))
    save_packed(model, tmp_path / f"{arch}.safetensors", arch)
    (tmp_path / f"{arch}.json").write_text(json.dumps({"config": {"arch": arch, "image_size": size}}))
    model.load_state_dict(read_packed(tmp_path / f"{arch}.safetensors"))  # the 8-bit weights the runtime runs
    x = images(size)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for runtime in (load_runtime_model(arch, tmp_path), load_runtime_model(tmp_path / f"{arch}.safetensors")):
        assert np.abs(runtime(x) - want).max() < TOLERANCE, arch


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [112, 64, 23])
def test_geometry_table_is_the_models(arch, size):
    """Every convolution's stride and padding is GEOMETRY's for its kernel; each transposed one's output padding is
    its encoder map's side minus what its taps reach, (n − 1)·stride + k."""
    model = make_model(arch, image_size=size)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            assert (m.stride[0], m.padding[0]) == GEOMETRY[m.kernel_size[0]], m
    ups = [layer[0] for layer in model.decoder[:-1]]
    maps = model.sizes[:len(ups)][::-1]  # the encoder maps the decoder retraces
    for up, n, target in zip(ups, model.sizes[::-1], maps):
        k, s = up.kernel_size[0], up.stride[0]
        assert isinstance(up, torch.nn.ConvTranspose2d)
        assert up.output_padding[0] == target - ((n - 1) * s + k)


def test_runtime_process_never_imports_torch():
    code = ("import sys; import numpy as np; from cae_course.runtime import load_runtime_model; "
            "x = np.zeros((1, 3, 112, 112), np.float32); "
            "y = load_runtime_model('rescae-pixel-blur')(x); y = load_runtime_model('vcae-pixel-blur')(x); "
            "assert y.shape == x.shape; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_name_lists_the_models(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'cae-nonsense'; available: cae-mixed0.5-blur, "):
        load_runtime_model("cae-nonsense")
    with pytest.raises(ValueError, match="available: none"):
        load_runtime_model("cae-pixel-blur", tmp_path)


def test_wrong_files_are_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"w": np.ones(3, np.float32)}, other)
    other.with_suffix(".json").write_text(json.dumps({"config": {"arch": "cae", "image_size": 112}}))
    with pytest.raises(ValueError, match=f"is not a cae_course model in format {QUANT_FORMAT}"):
        load_runtime_model(other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        load_runtime_model("junk", tmp_path)
    with pytest.raises(ValueError, match="lonely.safetensors does not exist"):
        load_runtime_model(tmp_path / "lonely.safetensors")
    save_file({"w": np.ones(3, np.float32)}, tmp_path / "lonely.safetensors", metadata={"format": QUANT_FORMAT})
    with pytest.raises(ValueError, match="has no configuration lonely.json beside it"):
        load_runtime_model(tmp_path / "lonely.safetensors")
    (tmp_path / "lonely.json").write_text(json.dumps({"config": {"arch": "cae", "image_size": 112}}))
    with pytest.raises(ValueError, match="has no encoder and decoder weights: not a cae_course model"):
        load_runtime_model(tmp_path / "lonely.safetensors")
    state = {k: v for k, v in read_state(weights_dir() / "cae-pixel-blur.safetensors").items()
             if not k.startswith("decoder.3.")}  # the head is missing
    save_file(state, tmp_path / "headless.safetensors", metadata={"format": QUANT_FORMAT})
    (tmp_path / "headless.json").write_text(json.dumps({"config": {"arch": "cae", "image_size": 112}}))
    with pytest.raises(ValueError, match="lacks 'decoder.2.0.bias': not a cae_course cae model"):
        load_runtime_model(tmp_path / "headless.safetensors")


def test_wrong_images_are_refused():
    model = load_runtime_model("cae-pixel-blur")
    for bad in (np.zeros((3, 112, 112), np.float32), np.zeros((1, 3, 64, 64), np.float32),
                np.zeros((1, 1, 112, 112), np.float32), torch.zeros(1, 3, 112, 112)):
        with pytest.raises(ValueError, match=r"takes a numpy array \[B, 3, 112, 112\]"):
            model(bad)
    with pytest.raises(ValueError, match="takes float32 images in \\[-1, 1\\], got float64"):
        model(np.zeros((1, 3, 112, 112)))


def test_unknown_arch_is_refused(tmp_path):
    save_packed(make_model("cae", image_size=64), tmp_path / "m.safetensors", "m")
    (tmp_path / "m.json").write_text(json.dumps({"config": {"arch": "unet", "image_size": 64}}))
    with pytest.raises(ValueError, match="unknown arch 'unet'; the runtime runs cae, vcae, rescae, skipcae"):
        load_runtime_model("m", tmp_path)
