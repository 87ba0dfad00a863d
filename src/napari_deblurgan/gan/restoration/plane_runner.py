"""The tile runner: a generator run over (H, W, 3) float planes in [0, 1] with symmetric border padding,
overlapping tiles (batched), blended stitching and cropping; whole frames of one shape batched together.
Out of memory, tiles shrink (or frames go one at a time) and the plane starts over.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..model.device import bf16_supported, is_out_of_memory, unless_out_of_memory
from ..model.networks import Generator, for_inference
from .ensemble import dihedral, undo_dihedral
from .options import TILE_SIZE, default_overlap
from .tiling import Tile, plan_tiles, tile_weights


def _precision_context(device: torch.device, half: bool) -> contextlib.AbstractContextManager[Any]:
    if not half:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and bf16_supported(device):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type == "mps":
        try:
            return torch.autocast("mps", dtype=torch.float16)
        except RuntimeError:  # torch before 2.5 has no autocast on MPS: full precision
            return contextlib.nullcontext()
    return contextlib.nullcontext()


class _CudnnAutotune:
    """cuDNN's autotuning on while any deblur runs on CUDA: it times its algorithms once per tile shape
    (tiles repeat the same few shapes). The flag is process-wide, so calls in several threads count
    themselves in and out, and the last one out restores the user's setting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = False

    @contextlib.contextmanager
    def __call__(self, device: torch.device) -> Iterator[None]:
        if device.type != "cuda":
            yield
            return
        cudnn = torch.backends.cudnn
        with self._lock:
            if self._running == 0:
                self._saved, cudnn.benchmark = cudnn.benchmark, True
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    cudnn.benchmark = self._saved


_cudnn_autotune = _CudnnAutotune()


class PlaneDeblurrer:
    """Runs a generator over (H, W, 3) float planes in [0, 1] with padding, tiling and batching."""

    def __init__(
        self,
        model: Generator,
        device: torch.device,
        tile_size: int | None = TILE_SIZE.default,
        tile_overlap: int | None = None,
        border: int = 16,
        batch_size: int = 2,
        half: bool = False,
        ensemble: int = 1,
    ) -> None:
        # tile_size, ensemble and the other options' types are checked by deblur (options.check_options)
        tile_overlap = default_overlap(tile_size) if tile_overlap is None else tile_overlap
        if tile_size is not None and not 0 <= tile_overlap < tile_size // 2:
            raise ValueError(
                f"tile_overlap must be at least 0 and less than half the tile size ({tile_size}), got {tile_overlap}"
            )
        on_grid = None if tile_size is None else tile_size - tile_size % model.multiple  # the tiles' real size
        if on_grid is not None and on_grid <= tile_overlap + model.multiple:
            raise ValueError(
                f"tile_size {tile_size} is {on_grid} px on the network's {model.multiple} px grid, too small for an "
                f"overlap of {tile_overlap}: use a larger tile_size or a smaller tile_overlap"
            )
        # per-tile statistics: normalisation layers in the network itself (a NAFNet config may carry the
        # ResNet's norm="instance" default, which it does not use)
        self.per_tile_statistics = any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())
        self.model = for_inference(model)
        self.multiple = model.multiple
        if device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.device, self.half, self.ensemble = device, half, ensemble
        self.tile_size = tile_size
        self.tile_overlap, self.border, self.batch_size = tile_overlap, border, max(1, batch_size)

    def padding(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Symmetric padding of a plane: ``border`` on each side, plus up to 3 px at the bottom/right so
        that every tile starts on the network's stride-4 grid (else tiles would not match the frame)."""
        m, b = self.multiple, self.border
        return (b, b + (-(height + 2 * b)) % m), (b, b + (-(width + 2 * b)) % m)

    def tiles_for(self, height: int, width: int) -> list[Tile]:
        (top, bottom), (left, right) = self.padding(height, width)
        h, w = height + top + bottom, width + left + right
        if self.tile_size is None or max(height, width) <= self.tile_size:  # the border does not count
            return [Tile(0, 0, h, w)]
        return plan_tiles(h, w, self.tile_size - self.tile_size % self.multiple, self.tile_overlap, self.multiple)

    def _to_device(self, planes: NDArray[np.float32]) -> torch.Tensor:
        """Planes on the runner's device; on CUDA through page-locked memory (no staging copy)."""
        x = torch.from_numpy(np.ascontiguousarray(planes))
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def _pad(self, planes: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) planes with :meth:`padding`, mirrored as numpy's "symmetric" mode (edge repeated)."""
        h, w = planes.shape[1:3]
        (top, bottom), (left, right) = self.padding(h, w)
        rows, cols = (
            torch.from_numpy(_symmetric(np.arange(-before, n + after), n)).to(planes.device)
            for n, before, after in ((h, top, bottom), (w, left, right))
        )
        return planes.index_select(1, rows).index_select(2, cols)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """The tiles ``batch`` (N, H, W, 3) in [0, 1] on the device plus half the change the network makes
        in [-1, 1] (not ``(y + 1) / 2``, which rounds: where the network changes nothing, the input comes
        back bit for bit)."""
        x = batch.permute(0, 3, 1, 2) * 2 - 1
        with torch.inference_mode(), _precision_context(self.device, self.half), _cudnn_autotune(self.device):
            y = sum(undo_dihedral(self._forward(dihedral(x, k)), k).float() - x for k in range(self.ensemble))
        return (batch + y.permute(0, 2, 3, 1) / (2 * self.ensemble)).clamp(0, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    #: Out of memory, tiles are halved down to this size before giving up.
    min_tile = 64

    def __call__(
        self,
        plane: NDArray[np.float32],
        on_tile: Callable[[], None] | None = None,
        on_retile: Callable[[], None] | None = None,
    ) -> NDArray[np.float32]:
        """Deblur one plane. Out of memory, retry it with tiles half the size (with a warning, and
        ``on_retile()`` so that progress can restart the plane), down to :attr:`min_tile`."""
        while True:
            try:
                return self._plane(plane, on_tile)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                h, w = plane.shape[:2]
                current = max(max(t.h, t.w) for t in self.tiles_for(h, w))
                smaller = max(self.min_tile, current // 2 - (current // 2) % self.multiple)
                if smaller >= current or max(h, w) <= smaller:  # no smaller tiles: the same frame again
                    raise MemoryError(
                        f"Out of memory on {self.device} even with tiles of {current} px; "
                        "use device='cpu' or close other programs using the memory"
                    ) from exc
                warnings.warn(
                    f"Out of memory on {self.device} with tiles of {current} px; retrying with {smaller} px tiles",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.tile_size, self.tile_overlap = smaller, min(self.tile_overlap, smaller // 4)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if on_retile:
                    on_retile()

    def frames(
        self,
        planes: list[NDArray[np.float32]],
        on_tile: Callable[[], None] | None = None,
        on_retile: Callable[[], None] | None = None,
        on_plane: Callable[[int], None] | None = None,
    ) -> list[NDArray[np.float32]]:
        """Deblur planes of one shape, each a single tile (frames of a stack), in one forward pass; out of
        memory, one at a time (:meth:`__call__`, after ``on_plane(k)`` for plane k)."""
        if len(planes) > 1:
            out = unless_out_of_memory(lambda: self._together(planes), self.device)
            if out is not None:
                for _ in planes:
                    if on_tile:
                        on_tile()
                return list(out)
        results = []
        for k, plane in enumerate(planes):
            if on_plane:
                on_plane(k)
            results.append(self(plane, on_tile, on_retile))
        return results

    def _together(self, planes: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        """Planes of one shape in one pass (a helper, so that out of memory its tensors are freed on return)."""
        h, w = planes[0].shape[:2]
        (top, _), (left, _) = self.padding(h, w)
        padded = self._pad(self._to_device(np.stack(planes)))
        return self._run(padded)[:, top : top + h, left : left + w].cpu().numpy()

    def _plane(self, plane: NDArray[np.float32], on_tile: Callable[[], None] | None) -> NDArray[np.float32]:
        """One plane through the network on the device: padded, tiled and stitched there, copied back once."""
        h, w = plane.shape[:2]
        padded = self._pad(self._to_device(plane[None]))[0]
        (top, _), (left, _) = self.padding(h, w)
        tiles = self.tiles_for(h, w)
        if len(tiles) == 1:
            out = self._run(padded[None])[0]
            if on_tile:
                on_tile()
            return out[top : top + h, left : left + w].cpu().numpy()
        ph, pw = padded.shape[:2]
        acc = torch.zeros((ph, pw, 3), dtype=torch.float32, device=self.device)
        weight = torch.zeros((ph, pw, 1), dtype=torch.float32, device=self.device)
        for group in _chunks(tiles, self.batch_size):
            batch = torch.stack([padded[t.y : t.y + t.h, t.x : t.x + t.w] for t in group])
            for t, out in zip(group, self._run(batch)):
                wt = torch.from_numpy(tile_weights(t, tiles, ph, pw)[:, :, None]).to(self.device)
                acc[t.y : t.y + t.h, t.x : t.x + t.w] += out * wt
                weight[t.y : t.y + t.h, t.x : t.x + t.w] += wt
                if on_tile:
                    on_tile()
        del padded, batch  # large planes: free them before the division, and divide in place
        acc.div_(weight)
        return acc[top : top + h, left : left + w].cpu().numpy()


def _symmetric(index: NDArray[np.int64], length: int) -> NDArray[np.int64]:
    """Indices mirrored into [0, length) with the edge repeated (numpy's "symmetric" padding), however far out."""
    folded = index % (2 * length)
    return np.where(folded >= length, 2 * length - 1 - folded, folded)


def _chunks(items: list[Tile], size: int) -> Iterator[list[Tile]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
