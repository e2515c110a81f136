"""cae_course.models: the CAE of chapter 04 and the variants of chapter 05, checked against independent references
(real conv layers, torch.distributions, closed forms) and for their failure modes."""
import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import cae_course.models as models
from cae_course.models import (CAE, MODELS, ResBlock, ResCAE, SkipCAE, VCAE, conv_geometry, count_flops,
                               count_parameters, encoder_sizes, input_footprint, kl_to_standard_normal, layer_table,
                               make_model, min_image_size, output_paddings, receptive_field, reparameterize)
from cae_course.runtime import ARCHS

ALL = sorted(ARCHS)  # the autoencoders of MODELS (the refiners of chapter 05a are tested in test_refine.py)


def images(n=2, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- shapes and sizes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size,latent", [(112, 12), (64, 6)])
def test_shapes(name, size, latent):
    model = make_model(name, image_size=size)
    x = images(2, size)
    assert model.latent_shape == (256, latent, latent)
    assert model.encode(x).shape == (2, 256, latent, latent)
    assert model(x).shape == x.shape


@pytest.mark.parametrize("name", ["cae", "vcae", "rescae"])
def test_encode_decode_round_trip_shapes(name):
    model = make_model(name, image_size=112).eval()
    x = images(3, 112)
    z = model.encode(x)
    assert model.decode(z).shape == x.shape
    torch.testing.assert_close(model.decode(z), model(x))  # forward is decode ∘ encode (eval: no sampling)


def test_skipcae_round_trip_needs_the_skips():
    model = SkipCAE(image_size=64).eval()
    x = images()
    *skips, z = model.features(x)
    torch.testing.assert_close(model.decode(z, skips), model(x))
    with pytest.raises(ValueError, match=r"features\(x\)\[:-1\]"):
        model.decode(z, skips[1:])


@pytest.mark.parametrize("size", [22, 23, 57, 100, 113, 128])
def test_every_side_from_the_minimum_is_reconstructed_at_its_size(size):
    model = CAE(image_size=size)
    assert model(images(2, size)).shape == (2, 3, size, size)


def test_the_paper_sizes():
    assert encoder_sizes(112) == [112, 55, 26, 12]
    assert output_paddings(encoder_sizes(112)) == [0, 1, 0]
    assert min_image_size() == 22 and encoder_sizes(22)[-1] == 1 and encoder_sizes(21)[-1] < 1


def test_output_padding_rule_inverts_real_convolutions():
    "Reference: PyTorch's own layers; the rule must restore every side for several kernels and strides."
    for kernel, stride in [(4, 2), (3, 2), (5, 3)]:
        for n in range(kernel, 80):
            down = nn.Conv2d(1, 1, kernel, stride)
            (pad,) = output_paddings([n, None], kernel, stride)
            up = nn.ConvTranspose2d(1, 1, kernel, stride, output_padding=pad)
            assert up(down(torch.zeros(1, 1, n, n))).shape[-1] == n, (kernel, stride, n)


def test_decoder_widths_readings():
    literal, mirror = CAE(), CAE(decoder_widths=(128, 64, 64))
    channels = lambda m: [l[0].out_channels for l in m.decoder]
    assert channels(literal) == [256, 128, 64, 3] and literal.decoder[0][0].in_channels == 256
    assert channels(mirror) == [128, 64, 64, 3]
    assert count_parameters(mirror) < count_parameters(literal)


# --- failure modes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, 16, 21, 64.0, "112"])
def test_invalid_image_size_names_the_minimum(bad):
    with pytest.raises(ValueError, match="≥ 22"):
        CAE(image_size=bad)


@pytest.mark.parametrize("name", ALL)
def test_wrong_input_shape_says_how_to_fix_it(name):
    model = make_model(name, image_size=112)
    for x in (torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 112, 112), torch.zeros(3, 112, 112),
              torch.zeros(1, 3, 112, 100)):
        with pytest.raises(ValueError, match=r"\[N, 3, 112, 112\].*image_size="):
            model(x)


def test_wrong_latent_shape_and_widths():
    with pytest.raises(ValueError, match=r"\[N, 256, 12, 12\]"):
        CAE().decode(torch.zeros(1, 256, 6, 6))
    with pytest.raises(ValueError, match="one width per strided convolution"):
        CAE(decoder_widths=(256, 128))


def test_make_model_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="cae, vcae, rescae, skipcae"):
        make_model("unet")
    assert type(make_model("vcae", image_size=64)) is VCAE
    assert make_model("rescae", n_blocks=1).encoder[-1].__class__ is ResBlock
    with pytest.raises(TypeError):
        make_model("cae", n_blocks=3)  # an argument the model does not take must not pass silently


# --- behaviour --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_output_in_tanh_range(name):
    model = make_model(name, image_size=64)
    with torch.no_grad():
        model.decoder[-1][0].weight.mul_(1000)  # drive the last layer far into saturation
        out = model(images(4) * 50)
    assert out.min() >= -1 and out.max() <= 1 and (out.abs() > 0.999).float().mean() > 0.5


@pytest.mark.parametrize("name", ALL)
def test_gradient_reaches_every_parameter(name):
    model = make_model(name, image_size=64)
    x = images(4)
    loss = (model(x) - x).pow(2).mean() + model.extra_loss()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ALL)
def test_eval_mode_is_deterministic_and_per_image(name):
    model = make_model(name, image_size=64)
    model(images(8, seed=1))  # a training step's worth of batch statistics
    model.eval()
    x = images(3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(model(x)[:1], model(x[:1]))  # no batch statistics in eval mode


@pytest.mark.parametrize("name", ["cae", "rescae", "skipcae"])
def test_deterministic_models_add_no_loss(name):
    model = make_model(name, image_size=64)
    model(images())
    assert model.extra_loss().item() == 0


# --- the VCAE -----------------------------------------------------------------------------------------------------

def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 8, 5, 5, generator=g) * 2, torch.randn(3, 8, 5, 5, generator=g) * 2
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                   torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), reference.mean())


def test_kl_closed_form_values():
    assert kl_to_standard_normal(torch.zeros(5), torch.zeros(5)).item() == 0  # N(0, 1) itself
    assert kl_to_standard_normal(torch.full((5,), 2.0), torch.zeros(5)).item() == pytest.approx(2.0)  # μ²/2
    assert kl_to_standard_normal(torch.zeros(4), torch.full((4,), math.log(0.25))).item() == pytest.approx(
        0.5 * (0.25 - 1 - math.log(0.25)))
    # a mean over elements, not a sum: two elements with KL 2 and 0 average to 1
    assert kl_to_standard_normal(torch.tensor([2.0, 0.0]), torch.zeros(2)).item() == pytest.approx(1.0)


def test_kl_is_non_negative():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        assert kl_to_standard_normal(torch.randn(50, generator=g) * 3, torch.randn(50, generator=g) * 3) >= 0


def test_reparameterize_samples_the_right_gaussian_and_is_differentiable():
    torch.manual_seed(0)
    mu = torch.full((200_000,), -1.5, requires_grad=True)
    logvar = torch.full((200_000,), math.log(0.09), requires_grad=True)
    z = reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(-1.5, abs=0.005) and z.std().item() == pytest.approx(0.3, abs=0.005)
    z.sum().backward()
    assert torch.all(mu.grad == 1) and logvar.grad.abs().sum() > 0


def test_vcae_eval_uses_the_mean_and_training_samples():
    model = VCAE(image_size=64)
    x = images()
    with torch.no_grad():
        z1, z2 = model.encode(x), model.encode(x)
        assert not torch.equal(z1, z2)  # training: a fresh sample each call
        model.eval()
        mu, logvar = model.distribution(x)
        torch.testing.assert_close(model.encode(x), mu, rtol=0, atol=0)
        # and the training-mode samples spread around μ by σ
        model.train()
        batch_mu, batch_logvar = model.distribution(x)
        torch.manual_seed(3)
        sample = model.encode(x)
        torch.manual_seed(3)
        expected = batch_mu + (0.5 * batch_logvar).exp() * torch.randn_like(batch_mu)
        torch.testing.assert_close(sample, expected)


def test_vcae_extra_loss_is_the_kl_of_the_last_forward():
    model = VCAE(image_size=64)
    for seed in (0, 1):  # each forward pass replaces the stored KL
        x = images(seed=seed)
        model(x)
        mu, logvar = model.distribution(x)
        assert model.kl.requires_grad and model.kl.item() > 0
        torch.testing.assert_close(model.kl, kl_to_standard_normal(mu, logvar))
        assert model.extra_loss() is model.kl


def test_the_kl_gradient_reaches_only_the_encoder():
    model = VCAE(image_size=64)
    model(images())
    model.extra_loss().backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None for p in [*model.to_mu.parameters(), *model.to_logvar.parameters()])


# --- the ResCAE and the SkipCAE -------------------------------------------------------------------------------------

def test_resblock_is_the_identity_when_its_convolutions_are_zero():
    block = ResBlock(8)
    x = torch.rand(2, 8, 6, 6)
    with torch.no_grad():
        assert not torch.allclose(block.eval()(x), x)  # eval mode: leaves the running statistics at 0 and 1
        block.train()
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            conv.weight.zero_()
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)  # training mode
        torch.testing.assert_close(block.eval()(x), x, rtol=0, atol=0)


def test_resblock_adds_its_two_layers_to_its_input():
    "The paper's reading: y = x + ReLU(BN(conv(ReLU(BN(conv(x)))))), computed here layer by layer."
    block = ResBlock(8).eval()
    x = torch.randn(2, 8, 6, 6)
    (c1, b1, _), (c2, b2, _) = block.body
    expected = x + torch.relu(b2(c2(torch.relu(b1(c1(x))))))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


def test_rescae_appends_three_blocks_to_the_encoder():
    model, base = ResCAE(), CAE()
    assert sum(isinstance(m, ResBlock) for m in model.encoder) == 3
    assert count_parameters(model) - count_parameters(base) == 3 * 2 * (9 * 256 * 256 + 2 * 256)
    assert ResCAE(n_blocks=0).latent_shape == base.latent_shape


def test_skipcae_decoder_reads_every_skip():
    model = SkipCAE(image_size=64).eval()
    x = images()
    with torch.no_grad():
        *skips, z = model.features(x)
        for i in range(len(skips)):
            changed = [s + 1.0 * (j == i) for j, s in enumerate(skips)]
            assert not torch.allclose(model.decode(z, changed), model(x)), i
    assert [layer[0].in_channels for layer in model.decoder] == [256, 256 + 128, 128 + 64, 64 + 64]


# --- cost and receptive field ---------------------------------------------------------------------------------------

def test_count_flops_against_hand_counts():
    conv = nn.Conv2d(3, 64, 9, padding=4, bias=False)
    assert count_flops(conv, torch.zeros(1, 3, 112, 112)) == 2 * 81 * 3 * 64 * 112 * 112
    assert count_flops(nn.Linear(10, 7), torch.zeros(5, 10)) == 2 * 5 * 10 * 7


def test_count_parameters_skips_frozen_ones():
    layer = nn.Linear(10, 7)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 70


@pytest.mark.parametrize("name", ["cae", "rescae"])
def test_layer_table_adds_up_to_the_model(name):
    model = make_model(name, image_size=64).eval()
    table = layer_table(model)
    assert sum(r["params"] for r in table) == count_parameters(model)
    assert table[-1]["output"] == "3 × 64 × 64" and table[len(model.encoder) - 1]["output"] == "256 × 6 × 6"
    total = count_flops(model, torch.zeros(1, 3, 64, 64)) / 1e6
    assert sum(r["MFLOPs"] for r in table) == pytest.approx(total, abs=0.1 * len(table))
    assert "| part | layer |" in table._repr_markdown_()


def test_receptive_field_formula():
    assert receptive_field([]) == (1, 1, 0)
    assert receptive_field([(7, 3, 2)]) == (7, 3, -2)
    assert receptive_field([(3, 1, 1)] * 3) == (7, 1, -3)
    assert receptive_field(conv_geometry(CAE().encoder)) == (30, 8, -4)
    assert receptive_field(conv_geometry(ResCAE().encoder))[0] == 126


@pytest.mark.parametrize("model,cell", [(CAE(image_size=112), (6, 5)), (CAE(image_size=64), (3, 2)),
                                        (ResCAE(image_size=160), (9, 9))])
def test_receptive_field_matches_the_gradient(model, cell):
    size, jump, start = receptive_field(conv_geometry(model.encoder))
    rows, cols = input_footprint(model, *cell, n_images=2)
    assert rows == range(start + cell[0] * jump, start + cell[0] * jump + size)
    assert cols == range(start + cell[1] * jump, start + cell[1] * jump + size)
    assert model.training  # the mode is restored


# --- the module is exported once -------------------------------------------------------------------------------------

def test_models_module_defines_each_name_once():
    "Chapter 05 appends to models.py; exporting 05 alone (nbdev_export --path) would append it twice."
    tree = ast.parse(Path(models.__file__).read_text())
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    names += [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    assert set(models.__all__) >= {"CAE", "VCAE", "ResCAE", "SkipCAE", "make_model", "MODELS"}
