from __future__ import annotations

import pytest
import torch

from napari_deblurgan.gan.model.generator import GeneratorConfig, ResnetGenerator, count_parameters, preset


def test_paper_preset_has_the_papers_parameter_count() -> None:
    # 9 ResBlocks of two 3x3 convs at 256 channels, instance norm without affine: 11.38 M.
    assert count_parameters(ResnetGenerator(preset("paper"))) == 11_378_179


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 9), (30, 17), (37, 41)])
@pytest.mark.parametrize("name", ["paper", "fast"])
def test_any_size_keeps_its_shape(name: str, size: tuple[int, int]) -> None:
    model = ResnetGenerator(preset(name, ngf=8, n_blocks=1)).eval()
    x = torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_eval_mode_is_deterministic_even_with_dropout() -> None:
    model = ResnetGenerator(preset("paper", ngf=8, n_blocks=2)).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # dropout is real in training


def test_residual_blocks_have_two_convolutions() -> None:
    # The original code's operator-precedence bug collapsed each block to one conv.
    model = ResnetGenerator(preset("paper"))
    blocks = [m for m in model.modules() if m.__class__.__name__ == "ResBlock"]
    assert len(blocks) == 9
    assert all(sum(isinstance(m, torch.nn.Conv2d) for m in b.modules()) == 2 for b in blocks)


def test_transposed_and_resize_upsampling_both_work() -> None:
    for up in ("transpose", "resize"):
        model = ResnetGenerator(GeneratorConfig(ngf=8, n_blocks=1, upsample=up)).eval()
        assert model(torch.zeros(1, 3, 12, 12)).shape == (1, 3, 12, 12)


def test_bad_config_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="norm must be"):
        GeneratorConfig(norm="group").validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown generator config keys"):
        GeneratorConfig.from_dict({"ngf": 8, "colour": 1})
    with pytest.raises(ValueError, match="choose one of"):
        preset("huge")


@pytest.mark.parametrize(("upsample", "norm"), [("resize", "none"), ("transpose", "none"), ("resize", "instance")])
@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 37, 53), (1, 3, 5, 9)])
def test_inference_generator_gives_the_trained_generators_output(
    upsample: str, norm: str, shape: tuple[int, ...]
) -> None:
    from napari_deblurgan.gan.model.generator import InferenceGenerator, ShufflePad, UpsampleConv

    torch.manual_seed(0)
    cfg = GeneratorConfig(ngf=8, n_blocks=2, norm=norm, dropout=0.0, upsample=upsample, block_padding="zero")
    model = ResnetGenerator(cfg).eval()
    for m in model.modules():  # unit-scale activations, a non-trivial residual, and biases: every tap matters
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.normal_(m.bias, 0, 0.1)
    fast = InferenceGenerator(model)
    fused = [m for m in fast.modules() if isinstance(m, UpsampleConv)]
    pads = [(m.padding, m.mode) for m in fast.modules() if isinstance(m, ShufflePad)]
    if upsample == "transpose":
        assert fused == pads == []
    elif norm == "none":  # the shuffles moved past the ReLUs and took on the pads that follow them
        assert [m.pad_input for m in fused] == [True, False]
        assert pads == [(1, "replicate"), (3, "reflect")]
    else:  # a normalisation of the upsampled image stops them
        assert [m.pad_input for m in fused] == [True, True]
        assert [p for p, _ in pads] == [0, 0]
    x = torch.rand(shape) * 2 - 1
    with torch.inference_mode():
        expected, got = model(x), fast(x)
        channels_last = fast(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == expected.shape == shape
    assert (expected - x).abs().max() > 0.1  # the check below is not vacuous
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(channels_last, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("padding", "mode"), [(0, "reflect"), (3, "reflect"), (1, "replicate"), (2, "replicate")])
def test_shuffle_pad_is_a_pixel_shuffle_then_a_pad(padding: int, mode: str) -> None:
    import torch.nn.functional as F

    from napari_deblurgan.gan.model.generator import ShufflePad

    phases = torch.randn(2, 4 * 3, 5, 7)  # channels in (row parity, column parity, channel) order
    interleaved = F.pixel_shuffle(phases.unflatten(1, (4, 3)).transpose(1, 2).flatten(1, 2), 2)
    expected = F.pad(interleaved, (padding,) * 4, mode=mode) if padding else interleaved
    for layout in (torch.contiguous_format, torch.channels_last):
        got = ShufflePad(padding, mode)(phases.contiguous(memory_format=layout))
        assert got.is_contiguous(memory_format=layout)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_shuffle_pad_refuses_what_it_cannot_do() -> None:
    from napari_deblurgan.gan.model.generator import ShufflePad

    with pytest.raises(ValueError, match="'reflect' or 'replicate'"):
        ShufflePad(1, "circular")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an image wider"):
        ShufflePad(3, "reflect")(torch.zeros(1, 4, 1, 5))  # 2 px tall: nothing to reflect 3 px of
