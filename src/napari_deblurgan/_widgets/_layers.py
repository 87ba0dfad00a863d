"""Layer helpers for the widgets: choosing image layers, the current frame, and showing results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Key in a result layer's metadata: where it came from, so it can be re-placed later.
SOURCE_KEY = "napari_deblurgan"


def image_choices(viewer: napari.viewer.Viewer) -> list[tuple[str, Image]]:
    """(name, layer) of every image layer, top-most first, for a ComboBox."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in reversed(viewer.layers) if isinstance(layer, Image)]


def stack_ndim(layer: Image) -> int:
    """Number of leading (non-YX, non-colour) axes: frames, slices, channels..."""
    return layer.data.ndim - 2 - int(layer.rgb)


def current_frame(viewer: napari.viewer.Viewer, layer: Image) -> tuple[int, ...]:
    """Index of the leading axes of ``layer`` at the viewer's current position."""
    n = stack_ndim(layer)
    coords = np.asarray(layer.world_to_data(viewer.dims.point))[:n]
    return tuple(int(np.clip(round(c), 0, s - 1)) for c, s in zip(coords, layer.data.shape[:n]))


def _placement(source: Image, frame: tuple[int, ...] | None, beside: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translate of a result: on the source (or just right of it), at ``frame`` for one frame."""
    scale, translate = np.array(source.scale, float), np.array(source.translate, float)
    if frame:
        translate[: len(frame)] += np.asarray(frame) * scale[: len(frame)]
    if beside:
        width = source.data.shape[-2 if source.rgb else -1]
        translate[-1] += width * scale[-1]
    return scale, translate


def show_result(
    viewer: napari.viewer.Viewer, source: Image, data: np.ndarray, frame: tuple[int, ...] | None, beside: bool
) -> Image:
    """Add "<source> deblurred" or update it in place, with the source's geometry and colour settings.

    A single frame keeps its leading axes (length 1) so it shows at that frame only.
    """
    if frame is not None:
        data = data.reshape((1,) * len(frame) + data.shape)
    name = f"{source.name} deblurred"
    scale, translate = _placement(source, frame, beside)
    style: dict[str, Any] = {"contrast_limits": source.contrast_limits, "gamma": source.gamma}
    if not source.rgb:
        style["colormap"] = source.colormap
    meta = {SOURCE_KEY: {"source": source.name, "frame": frame}}
    old = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401 (LayerList has no .get)
    if old is not None and old.data.ndim == data.ndim and old.rgb == source.rgb:
        old.data = data
        old.scale, old.translate = scale, translate
        old.metadata.update(meta)
        for key, value in style.items():
            setattr(old, key, value)
        return old
    if old is not None:
        viewer.layers.remove(old)
    layer = viewer.add_image(data, name=name, rgb=source.rgb, scale=scale, translate=translate, metadata=meta, **style)
    if beside:
        viewer.reset_view()
    return layer


def place_results(viewer: napari.viewer.Viewer, beside: bool) -> None:
    """Move every result layer whose source is still open onto (or beside) its source."""
    for layer in viewer.layers:
        info = layer.metadata.get(SOURCE_KEY)
        if info and info["source"] in viewer.layers:
            frame = tuple(info["frame"]) if info["frame"] is not None else None
            _, layer.translate = _placement(viewer.layers[info["source"]], frame, beside)
    viewer.reset_view()


def show_preview(viewer: napari.viewer.Viewer, name: str, image: np.ndarray) -> None:
    """Show ``image`` as layer ``name``, replacing its data if it exists."""
    if name in viewer.layers:
        viewer.layers[name].data = image
    else:
        viewer.add_image(image, name=name, rgb=image.ndim == 3)
