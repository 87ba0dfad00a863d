"""Layer helpers for the widgets: choosing image layers, the current frame, and showing results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Key in a result layer's metadata: where it came from, so it can be re-placed later.
SOURCE_KEY = "napari_deblurgan"
#: Key in the training preview's metadata: the run and step it shows.
PREVIEW_KEY = "napari_deblurgan_preview"
PREVIEW_GAP = 8  # pixels between the preview's panels, and between the preview and the data above it


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


def is_ours(layer: Any) -> bool:
    """A layer this plugin made (a result or a training preview), never itself an input to choose."""
    return SOURCE_KEY in layer.metadata or PREVIEW_KEY in layer.metadata


def _placement(source: Image, frame: tuple[int, ...] | None, slot: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translate of a result: on the source (slot 0) or ``slot`` widths right of it, at ``frame``
    for one frame."""
    from napari.utils.transforms import Affine

    scale, translate = np.array(source.scale, float), np.array(source.translate, float)
    if frame:
        translate[: len(frame)] += np.asarray(frame) * scale[: len(frame)]
    width = source.data.shape[-2 if source.rgb else -1]
    shift = np.zeros_like(translate)
    shift[-1] = slot * width * scale[-1]
    # along the source's own x axis, as its rotation and shear turn it
    turn = Affine(rotate=source.rotate, shear=source.shear, ndim=len(translate)).linear_matrix
    return scale, translate + turn @ shift


def _results_of(viewer: napari.viewer.Viewer, source: Image) -> list[Image]:
    return [layer for layer in viewer.layers if layer.metadata.get(SOURCE_KEY, {}).get("source") == source.name]


def _geometry(source: Image) -> dict[str, Any]:
    """The source's rotation, shear, affine transform, units and axis labels (the last two where this napari
    has them), so that a result lies where its source does, in its units."""
    geometry = {"rotate": source.rotate, "shear": source.shear, "affine": source.affine.affine_matrix}
    geometry.update({key: getattr(source, key) for key in ("units", "axis_labels") if hasattr(source, key)})
    return geometry


def show_result(
    viewer: napari.viewer.Viewer,
    source: Image,
    data: np.ndarray,
    frame: tuple[int, ...] | None,
    beside: bool,
    keep: bool = False,
    settings: str = "",
) -> Image:
    """Add "<source> deblurred" or update this plugin's earlier result in place, with the source's geometry
    and colour settings. A layer of that name that this plugin did not make for ``source`` is never
    touched: the result takes the next free name ("... deblurred 2").

    ``keep``: add "<source> deblurred 2", "... 3" instead, each beside the previous when ``beside``, so that
    results of several settings (``settings``, kept in the metadata) can be compared.
    A single frame keeps its leading axes (length 1) so it shows at that frame only.
    """
    if frame is not None:
        data = data.reshape((1,) * len(frame) + data.shape)
    base, results = f"{source.name} deblurred", _results_of(viewer, source)
    old = None if keep else next((layer for layer in results if layer.name == base), None)
    if old is None and not keep and base in viewer.layers:  # the name is the user's: our stand-in result for it
        old = next((layer for layer in results if not layer.metadata[SOURCE_KEY].get("keep")), None)
    if old is not None:
        name = old.name
    elif base not in viewer.layers and not (keep and results):
        name = base
    else:
        first = max(2, len(results) + 1)
        name = next(f"{base} {n}" for n in range(first, first + 1000) if f"{base} {n}" not in viewer.layers)
    slot = len(results) + 1 if keep and results else 1
    scale, translate = _placement(source, frame, slot if beside else 0)
    style: dict[str, Any] = {"contrast_limits": source.contrast_limits, "gamma": source.gamma, **_geometry(source)}
    if not source.rgb:
        style["colormap"] = source.colormap
    meta = {SOURCE_KEY: {"source": source.name, "frame": frame, "slot": slot, "settings": settings, "keep": keep}}
    if old is not None and old.data.ndim == data.ndim and old.rgb == source.rgb:
        old.data = data
        old.scale, old.translate = scale, translate
        old.metadata.update(meta)
        for key, value in style.items():
            setattr(old, key, value)
        return old
    if old is not None:  # this plugin's earlier result, of another shape
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
            _, layer.translate = _placement(viewer.layers[info["source"]], frame, info["slot"] if beside else 0)
    viewer.reset_view()


def show_preview(viewer: napari.viewer.Viewer, layer: Image | None, image: np.ndarray, run: str, step: int) -> Image:
    """Show the training preview (blurred | output | sharp) as one labelled layer: ``layer`` updated in place
    while it is open, else a new one placed below everything else in the viewer, not over the user's data."""
    name = f"preview step {step}: blurred | output | sharp [{run}]"  # napari elides the middle of long names
    meta = {"run": run, "step": step}
    if layer is not None and layer in viewer.layers:
        layer.data, layer.name = image, name
        layer.metadata[PREVIEW_KEY] = meta
        return layer
    top = 0.0
    if len(viewer.layers):
        top = float(viewer.layers.extent.world[1][-2]) + PREVIEW_GAP
    return viewer.add_image(image, name=name, rgb=True, translate=(top, 0.0), metadata={PREVIEW_KEY: meta})


def side_by_side(*panels: np.ndarray) -> np.ndarray:
    """Equal-height (H, W, 3) uint8 panels in a row, PREVIEW_GAP dark pixels apart."""
    height = max(panel.shape[0] for panel in panels)
    gap = np.zeros((height, PREVIEW_GAP, 3), np.uint8)
    row: list[np.ndarray] = []
    for panel in panels:
        padded = np.zeros((height, *panel.shape[1:]), np.uint8)
        padded[: panel.shape[0]] = panel
        row += [padded, gap]
    return np.concatenate(row[:-1], axis=1)
