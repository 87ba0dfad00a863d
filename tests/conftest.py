"""Shared fixtures: small generators saved as real model files; GPUs only where a test asks for one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--gpu",
        action="store_true",
        help="let device='auto' pick a GPU in every test (by default only tests marked cuda use one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: checks the CUDA path; skipped without a CUDA GPU")


@pytest.fixture(autouse=True)
def _cpu_unless_asked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """device='auto' means the CPU in tests (in subprocesses too), so results are the same on every
    machine; tests marked ``cuda`` (and every test with ``--gpu``) see the machine's GPUs."""
    if request.config.getoption("--gpu") or request.node.get_closest_marker("cuda"):
        return
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def _tiny_generator(seed: int, identity: bool = False):
    import torch

    from napari_deblurgan.gan.model.generator import GeneratorConfig, ResnetGenerator

    torch.manual_seed(seed)
    cfg = GeneratorConfig(ngf=8, n_blocks=2, norm="none", dropout=0.0, upsample="resize", block_padding="zero")
    model = ResnetGenerator(cfg)
    out_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        if identity:
            out_conv.weight.zero_()
        else:  # undo the near-identity init so the network visibly changes images
            out_conv.weight.normal_(0, 0.05)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random (untrained) small generator whose output clearly differs from its input."""
    from napari_deblurgan.gan.model.weights import save_generator

    return save_generator(_tiny_generator(0), tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture(scope="session")
def identity_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generator whose residual is exactly zero: deblur() must then return its input unchanged."""
    from napari_deblurgan.gan.model.weights import save_generator

    return save_generator(_tiny_generator(1, identity=True), tmp_path_factory.mktemp("models") / "identity.safetensors")


@pytest.fixture
def ungated_refinement(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift PSF refinement's checks that keep a generator's output whose change no PSF explains (the
    identity model changes nothing): the share it leaves unexplained, and the deconvolution's
    direction against the generator's change."""
    from napari_deblurgan.gan.restoration import psf_refine

    monkeypatch.setattr(psf_refine, "AGREEMENT", (float("inf"), float("inf")))
    monkeypatch.setattr(psf_refine, "DIRECTION", (-2.0, -1.0))


@pytest.fixture(scope="session")
def natural_rgb() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture
def sharp(tmp_path: Path) -> Path:
    """A folder of one sharp photo (100 x 100 RGB), for training runs from the command line."""
    import skimage.data

    from napari_deblurgan.gan.io.images import write_image

    folder = tmp_path / "sharp"
    folder.mkdir()
    write_image(folder / "a.png", skimage.data.astronaut()[:100, :100])
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside every output folder that no test may change."""
    from napari_deblurgan.gan.io.images import write_image

    path = tmp_path / "outside" / "victim.png"
    path.parent.mkdir()
    write_image(path, np.full((8, 8), 42, np.uint8))
    return path
