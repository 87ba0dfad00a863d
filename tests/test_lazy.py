"""deblur() on dask arrays: lazy, block-wise with correct seams, and runnable on a dask cluster."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio

from napari_deblurgan import deblur


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    img = skimage.data.astronaut()[:256, :320]
    return np.stack([img, img[::-1], img[:, ::-1]])


def test_a_dask_stack_gives_a_lazy_result_equal_to_the_in_memory_one(tiny_model_path, stack) -> None:
    lazy = deblur(da.from_array(stack, chunks=(2, 100, 100, 3)), tiny_model_path)
    assert isinstance(lazy, da.Array) and lazy.shape == stack.shape and lazy.dtype == stack.dtype
    assert lazy.numblocks[0] == 3  # one task per frame
    np.testing.assert_array_equal(lazy.compute(), deblur(stack, tiny_model_path))
    ensembled = deblur(da.from_array(stack[:1]), tiny_model_path, ensemble=2)
    np.testing.assert_array_equal(ensembled.compute(), deblur(stack[:1], tiny_model_path, ensemble=2))
    gentle = deblur(da.from_array(stack[:1]), tiny_model_path, strength=0.5)
    np.testing.assert_array_equal(gentle.compute(), deblur(stack[:1], tiny_model_path, strength=0.5))
    with pytest.raises(ValueError, match="ensemble"):  # refused at once, not when computed
        deblur(da.from_array(stack), tiny_model_path, ensemble=5)


def test_frames_of_a_dask_stack_are_grouped_batch_size_to_a_block(tiny_model_path, stack) -> None:
    """So that a GPU gets several frames per forward pass (batch_size defaults to 4 there, 1 on the CPU)."""
    lazy = deblur(da.from_array(stack, chunks=(1, 100, 100, 3)), tiny_model_path, batch_size=2)
    assert lazy.chunks[0] == (2, 1)
    assert np.abs(lazy.compute().astype(int) - deblur(stack, tiny_model_path)).max() <= 1
    tall = deblur(da.from_array(np.concatenate([stack] * 4, axis=1)), tiny_model_path, batch_size=2, tile_size=256)
    assert tall.chunks[0] == (1, 1, 1)  # frames split into blocks: one frame per block


def test_large_planes_split_into_overlapping_blocks_without_seams(tiny_model_path) -> None:
    big = np.tile(skimage.data.astronaut(), (3, 3, 1))[:1500, :1400]
    lazy = deblur(da.from_array(big, chunks=300), tiny_model_path, tile_size=256, tile_overlap=64)
    assert max(lazy.numblocks[:2]) >= 3
    whole = deblur(big, tiny_model_path, tile_size=None)
    assert peak_signal_noise_ratio(whole, lazy.compute()) >= 45.0


def test_frames_split_into_blocks_keep_the_generators_output_and_whole_ones_are_refined() -> None:
    from napari_deblurgan.gan.data.blur import blur_image, linear_kernel

    sharp = skimage.data.camera()[:300, :300].astype(np.float32) / 255  # a 15 px streak: refinement acts
    image = (np.clip(blur_image(sharp, linear_kernel(15, 0)), 0, 1) * 255).round().astype(np.uint8)
    lazy = da.from_array(image)
    split = deblur(lazy, tile_size=64)  # blocks of 128 px: a PSF and a gate each would leave seams
    assert max(split.numblocks) >= 2
    np.testing.assert_array_equal(split.compute(), deblur(lazy, tile_size=64, refine=False).compute())
    whole = deblur(lazy).compute()  # one block: refined like the in-memory frame
    np.testing.assert_array_equal(whole, deblur(image))
    assert not np.array_equal(whole, deblur(image, refine=False))


def test_float_and_channel_first_dask(tiny_model_path, stack) -> None:
    chw = np.moveaxis(stack[0], -1, 0).astype(np.float32) * 3 - 100
    lazy = deblur(da.from_array(chw), tiny_model_path, channel_axis=0)
    np.testing.assert_allclose(lazy.compute(), deblur(chw, tiny_model_path, channel_axis=0), atol=1e-3)
    two = chw[:2, :, :40]  # channels that are not colour: each deblurred as a gray plane
    lazy = deblur(da.from_array(np.moveaxis(two, 0, -1)), tiny_model_path, channel_axis=-1, rgb=False)
    assert lazy.shape == (*two.shape[1:], 2)
    np.testing.assert_allclose(
        np.moveaxis(lazy.compute(), -1, 0), deblur(two, tiny_model_path, channel_axis=0), atol=1e-3
    )
    with pytest.raises(ValueError, match="NaN"):
        deblur(da.from_array(np.full((8, 8), np.nan)), tiny_model_path)


def test_runs_on_a_two_worker_local_cluster(tiny_model_path, stack) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        lazy = deblur(da.from_array(stack, chunks=(1, 256, 320, 3)), str(tiny_model_path))
        result = client.compute(lazy).result()
        workers = client.run(lambda: 1)
    assert len(workers) == 2
    np.testing.assert_array_equal(result, deblur(stack, tiny_model_path))


@pytest.mark.parametrize("multiple", [4, 16])
@pytest.mark.parametrize(("length", "block"), [(3073, 2048), (4100, 2048), (6148, 2048), (10000, 2048), (4097, 256)])
def test_blocks_are_balanced_without_a_thin_leftover(length, block, multiple) -> None:
    from napari_deblurgan.gan.io.lazy import _block_sizes

    sizes = _block_sizes(length, block, multiple)
    assert sum(sizes) == length and len(set(sizes[:-1])) == 1
    assert all(size % multiple == 0 and size <= block for size in sizes[:-1])  # blocks start on the grid
    assert sizes[0] <= sizes[-1] < sizes[0] + multiple * len(sizes)  # e.g. 4097 by 256 on 16: 240 x 16, 257
