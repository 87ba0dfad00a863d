"""GOPRO-like blur: sub-frames along a camera (or object) path, averaged in linear light, then the
camera's realism steps (RSBlur, Rim et al. ECCV 2022): saturated highlights, Poisson-Gaussian noise,
a random camera response, JPEG and 8 bits.

The kinds of blur (:data:`KINDS`), each a map ``G_t`` from a pixel of sub-frame ``t`` (t in [-1/2, 1/2])
to where it comes from in the sharp frame, with ``G_0`` the identity (the middle sub-frame is the sharp
target, GOPRO's convention):

- ``camera``: the camera rotates about all three axes (``K R(t) K^-1``): yaw and pitch shift the
  frame, roll turns it about the principal point, so the blur grows towards the frame's edges;
- ``object``: a region of another photo under a soft blob-shaped mask moves on its own path over a
  background that shakes a little, occluding it;
- ``zoom``: forward motion, the frame scaling about a focus of expansion (blur grows away from it);
- ``kernel``: one random camera-shake trajectory (Boracchi and Foi) for the whole frame, the blur
  the older synthesis made.

Optionally the photo is made soft first, the target with it (``soft``: all of it; ``defocus``: all but an
in-focus blob), for a network that leaves natively soft photos soft.

Random choices are drawn by :func:`plan_batch` with numpy on the CPU, and the images are made by
:func:`render` in torch on any device, so a batch is a pure function of its seed, the same on CPU and
CUDA (up to float rounding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from ..filters import gaussian_filter
from .blur import random_trajectories

KINDS = ("camera", "object", "zoom", "kernel")


@dataclass
class RealisticBlur:
    """Options of the engine (a recipe's ``realistic`` dict)."""

    mix: dict[str, float] = field(default_factory=lambda: {"camera": 0.4, "object": 0.25, "zoom": 0.1, "kernel": 0.25})
    extent: tuple[float, float] = (3.0, 40.0)  # px: the largest distance a point travels in the exposure
    extent_power: float = 1.0  # extents are low + (high - low) * u ** power, u uniform: > 1 draws mild blur more often
    sharp: float = 0.05  # share of samples without motion (noise, tone and JPEG only): keep sharp photos sharp
    step: float = 1.5  # at most this many px between sub-frames, so long blur is smooth, not ghosted
    max_subframes: int = 41
    saturation: float = 0.5  # share of samples whose clipped highlights are brighter than white (streaks)
    noise: tuple[float, float] = (0.0, 3.0)  # range of the multiplier of RSBlur's Poisson-Gaussian noise levels
    gamma: tuple[float, float] = (2.0, 2.4)  # camera response: linear = value ** gamma
    jpeg: float = 0.5  # share of blurred inputs JPEG-compressed (4:2:0)
    jpeg_quality: tuple[int, int] = (60, 95)
    gray: float = 0.1  # share of grey samples
    soft: float = 0.0  # share of samples whose photo is softened first (target too): natively soft photos stay soft
    soft_sigma: tuple[float, float] = (0.4, 1.2)  # px: range of the softening Gaussian's sigma
    defocus: float = 0.0  # share of samples whose photo is out of focus outside a blob (target too): bokeh stays soft
    defocus_sigma: tuple[float, float] = (1.0, 4.0)  # px: range of the defocus Gaussian's sigma

    def __post_init__(self) -> None:
        self.extent = tuple(self.extent)  # type: ignore[assignment]
        self.noise = tuple(self.noise)  # type: ignore[assignment]
        self.gamma = tuple(self.gamma)  # type: ignore[assignment]
        self.jpeg_quality = tuple(self.jpeg_quality)  # type: ignore[assignment]
        self.soft_sigma = tuple(self.soft_sigma)  # type: ignore[assignment]
        self.defocus_sigma = tuple(self.defocus_sigma)  # type: ignore[assignment]
        unknown = set(self.mix) - set(KINDS)
        if unknown or not self.mix or any(not w >= 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError(f"realistic.mix weighs the kinds {list(KINDS)} with numbers >= 0; got {self.mix}")
        lo, hi = self.extent
        if not 0 <= lo <= hi:
            raise ValueError(f"realistic.extent is a range of px, 0 <= low <= high; got {self.extent}")
        for name in ("sharp", "saturation", "jpeg", "gray", "soft", "defocus"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"realistic.{name} is a share, in [0, 1]; got {getattr(self, name)}")
        if not self.extent_power > 0:
            raise ValueError(f"realistic.extent_power must be > 0 (1: uniform extents); got {self.extent_power}")
        if not (self.step > 0 and self.max_subframes >= 3):
            raise ValueError("realistic.step must be > 0 and realistic.max_subframes >= 3")
        if not (0 <= self.noise[0] <= self.noise[1] and 1 <= self.gamma[0] <= self.gamma[1]):
            raise ValueError("realistic.noise needs 0 <= low <= high, realistic.gamma 1 <= low <= high")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"realistic.jpeg_quality is a range within 1..100; got {self.jpeg_quality}")
        for name in ("soft_sigma", "defocus_sigma"):
            if not 0 < getattr(self, name)[0] <= getattr(self, name)[1]:
                raise ValueError(f"realistic.{name} is a range of px, 0 < low <= high; got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RealisticBlur:
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise ValueError(f"Unknown realistic blur options {sorted(set(data) - known)}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    """The random choices of one batch (numpy, CPU): everything :func:`render` needs besides pixels."""

    kinds: list[str]
    extents: NDArray[np.float64]  # (B,) px
    background: NDArray[np.float64]  # (B, N, 3, 3): output pixel (x, y, 1) -> sharp canvas pixel
    foreground: NDArray[np.float64]  # (B, N, 3, 3): output pixel -> object canvas pixel (object samples)
    blob: NDArray[np.float64]  # (B, 10): centre x, y (object canvas px), radius, 3 amplitudes, 3 phases, edge
    has_object: NDArray[np.bool_]  # (B,)
    boost: NDArray[np.float64]  # (B,) highlight gain (0: none)
    noise: NDArray[np.float64]  # (B,) multiplier of the noise levels
    gamma: NDArray[np.float64]  # (B,)
    jpeg: NDArray[np.int64]  # (B,) quality, 0 for none
    gray: NDArray[np.bool_]  # (B,)
    seed: int  # of the noise
    margin: int  # px by which the canvases exceed the output on each side
    soften: NDArray[np.float64]  # (B,) sigma (px) of the Gaussian that softens the photo first, 0 for none
    defocus: NDArray[np.float64]  # (B,) sigma (px) of the defocus outside the in-focus blob, 0 for none
    focus: NDArray[np.float64]  # (B, 10): the in-focus blob on the sharp canvas, as ``blob``


def _rotation(angles: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotation matrices (..., 3, 3) of rotation vectors (..., 3) (Rodrigues)."""
    theta = np.linalg.norm(angles, axis=-1, keepdims=True)[..., None]
    k = angles / np.maximum(theta[..., 0], 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    cross = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(*k.shape[:-1], 3, 3)
    eye = np.broadcast_to(np.eye(3), cross.shape)
    return eye + np.sin(theta) * cross + (1 - np.cos(theta)) * cross @ cross


def _translation(dx: NDArray | float, dy: NDArray | float) -> NDArray[np.float64]:
    dx, dy = np.broadcast_arrays(np.asarray(dx, float), np.asarray(dy, float))
    m = np.zeros((*dx.shape, 3, 3))
    m[..., 0, 0] = m[..., 1, 1] = m[..., 2, 2] = 1
    m[..., 0, 2], m[..., 1, 2] = dx, dy
    return m


def _apply(m: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply homographies (..., 3, 3) to points (P, 2): (..., P, 2)."""
    h = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    out = h @ np.swapaxes(m, -1, -2)
    return out[..., :2] / out[..., 2:3]


def _extent(maps: NDArray[np.float64], probes: NDArray[np.float64]) -> float:
    """The largest distance between two sub-frames' positions of any probe point under maps (N, 3, 3)."""
    tracks = _apply(maps, probes)  # (N, P, 2)
    d = tracks[:, None] - tracks[None, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def _smooth_path(rng: np.random.Generator, t: NDArray[np.float64], dims: int) -> NDArray[np.float64]:
    """A smooth random path (N, dims) that is 0 at t = 0 and 0 on average over ``t`` (symmetric about 0):
    drift, curvature (``t^2 - c t^4``, ``c`` making its mean 0) and a little shake (odd sines). So the
    middle sub-frame is where the blur's centre of mass lies: a path whose mean lay elsewhere would
    shift the blurred image off its target by a few px, which no network can learn to undo."""
    tt = t[:, None]
    c = np.mean(t**2) / np.mean(t**4)
    v = rng.standard_normal(dims)
    a = rng.standard_normal(dims) * rng.uniform(0, 1.5)
    shake = np.zeros((len(t), dims))
    for _ in range(2):
        freq = rng.uniform(1, 4)
        shake += rng.standard_normal(dims) * rng.uniform(0, 0.15) * np.sin(2 * np.pi * freq * tt)
    return v * tt + a * (tt**2 - c * tt**4) + shake


def _scaled(make: Any, target: float, probes: NDArray[np.float64]) -> NDArray[np.float64]:
    """Maps ``make(s)`` (N, 3, 3) with the scale ``s`` of their motion set so their extent is ``target``."""
    s = 1.0
    for _ in range(3):  # rotations are nearly linear at these angles: two corrections suffice
        e = _extent(make(s), probes)
        if e < 1e-9:
            return make(0.0)
        s *= target / e
    return make(s)


def _camera(rng, t, frame, crop, target, probes) -> NDArray[np.float64]:
    """Maps of a camera rotating about its three axes (output crop px -> frame px)."""
    fh, fw = frame
    focal = rng.uniform(0.6, 1.3) * max(fh, fw)
    k = np.array([[focal, 0, fw / 2], [0, focal, fh / 2], [0, 0, 1]])
    path = _smooth_path(rng, t, 3) * np.array([1.0, 1.0, rng.uniform(0.2, 2.5)])  # roll: little to a lot
    to_frame = _translation(crop[1], crop[0])

    def make(s: float) -> NDArray[np.float64]:
        return k @ _rotation(path * s / focal) @ np.linalg.inv(k) @ to_frame

    return _scaled(make, target, probes)


def _zoom(rng, t, frame, crop, target, probes) -> NDArray[np.float64]:
    """Maps of forward (or backward) motion: scaling about a focus of expansion in the frame."""
    fh, fw = frame
    cy, cx = rng.uniform(0.25, 0.75) * fh, rng.uniform(0.25, 0.75) * fw
    direction = rng.choice([-1.0, 1.0])
    to_frame = _translation(crop[1], crop[0])

    def make(s: float) -> NDArray[np.float64]:
        scale = np.exp(direction * s * 1e-3 * t)
        m = np.zeros((len(t), 3, 3))
        m[:, 0, 0] = m[:, 1, 1] = scale
        m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = cx * (1 - scale), cy * (1 - scale), 1
        return m @ to_frame

    return _scaled(make, target, probes)


def _kernel(rng, t, frame, crop, target, probes) -> NDArray[np.float64]:
    """Maps of one camera-shake trajectory (a translation per sub-frame): the same blur everywhere. The
    path is centred on its mean position (the blur's centre of mass), not on its middle sub-frame: a
    random walk's middle can lie far from its mean."""
    path = random_trajectories(rng, np.array([1.0]), steps=256)[0]
    exposure = rng.uniform(0.6, 1.0)
    path = path[: max(2, int(len(path) * exposure))]
    at, steps = np.linspace(0, len(path) - 1, len(t)), np.arange(len(path))  # the path at the sub-frames' times
    pos = np.interp(at, steps, path.real) + 1j * np.interp(at, steps, path.imag)
    pos = pos - pos.mean()  # centred on its mean, as the one-kernel synthesis centres its PSFs
    to_frame = _translation(crop[1], crop[0])
    return _scaled(lambda s: _translation(pos.real * s, pos.imag * s) @ to_frame, target, probes)


def plan_batch(
    rng: np.random.Generator,
    options: RealisticBlur,
    out_hw: tuple[int, int],
    margin: int,
    frames: list[tuple[int, int]],
    crops: list[tuple[int, int]],
) -> Plan:
    """Draw the random choices of a batch. Sample ``b``'s output is the ``out_hw`` region at ``crops[b]``
    (top, left) of a frame of size ``frames[b]``; its sharp canvas is that region grown by ``margin``."""
    b = len(frames)
    h, w = out_hw
    names = list(options.mix)
    weights = np.array([options.mix[n] for n in names], dtype=float)
    kinds = [names[i] for i in rng.choice(len(names), size=b, p=weights / weights.sum())]
    lo, hi = options.extent
    still = rng.random(b) < options.sharp
    extents = np.where(still, 0.0, lo + (hi - lo) * rng.random(b) ** options.extent_power)  # rng.uniform at power 1
    n = int(np.clip(np.ceil(extents.max() / options.step) + 1, 3, options.max_subframes)) | 1  # odd: a middle
    t = np.linspace(-0.5, 0.5, n)
    yy, xx = np.meshgrid(np.linspace(0, h - 1, 3), np.linspace(0, w - 1, 3), indexing="ij")
    probes = np.stack([xx.ravel(), yy.ravel()], axis=1)
    to_canvas = lambda crop: _translation(margin - crop[1], margin - crop[0])  # noqa: E731
    background = np.zeros((b, n, 3, 3))
    foreground = np.tile(np.eye(3), (b, n, 1, 1))
    blob = np.zeros((b, 10))
    has_object = np.zeros(b, dtype=bool)
    makers = {"camera": _camera, "zoom": _zoom, "kernel": _kernel}
    for i, kind in enumerate(kinds):
        frame, crop = frames[i], crops[i]
        if kind == "object":
            shake = extents[i] * rng.uniform(0, 0.3)
            background[i] = to_canvas(crop) @ _camera(rng, t, frame, crop, shake, probes)
            path = _smooth_path(rng, t, 3)  # x, y and a turn
            centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
            radius = rng.uniform(0.12, 0.35) * min(h, w)
            object_probes = centre + radius * np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]])

            def moving(s: float, path=path, centre=centre, radius=radius) -> NDArray[np.float64]:
                turn = _rotation(np.stack([0 * t, 0 * t, path[:, 2] * s / radius], axis=1))
                about = _translation(centre[0], centre[1]) @ turn @ _translation(-centre[0], -centre[1])
                return _translation(path[:, 0] * s, path[:, 1] * s) @ about

            motion = _scaled(moving, extents[i], object_probes)
            foreground[i] = _translation(margin, margin) @ motion
            edge = rng.uniform(0.7, 2.0)  # px of soft edge
            blob[i] = [
                centre[0] + margin,
                centre[1] + margin,
                radius,
                *rng.uniform(0, 0.15, 3),
                *rng.uniform(0, 2 * np.pi, 3),
                edge,
            ]
            has_object[i] = True
        else:
            background[i] = to_canvas(crop) @ makers[kind](rng, t, frame, crop, extents[i], probes)
    boost = np.where(rng.random(b) < options.saturation, rng.uniform(0.25, 1.75, b), 0.0)
    noise = rng.uniform(*options.noise, size=b)
    gamma = rng.uniform(*options.gamma, size=b)
    jq = rng.integers(options.jpeg_quality[0], options.jpeg_quality[1] + 1, size=b)
    jpeg = np.where(rng.random(b) < options.jpeg, jq, 0)
    gray = rng.random(b) < options.gray
    seed = int(rng.integers(2**62))
    # drawn last, and only when asked for: the other choices stay those of recipes without softening
    soften, defocus, focus = np.zeros(b), np.zeros(b), np.zeros((b, 10))
    if options.soft or options.defocus:
        soften = np.where(rng.random(b) < options.soft, rng.uniform(*options.soft_sigma, b), 0.0)
        defocus = np.where(rng.random(b) < options.defocus, rng.uniform(*options.defocus_sigma, b), 0.0)
        side = min(h, w)
        focus = np.column_stack([
            margin + rng.uniform(0.1, 0.9, b) * w,
            margin + rng.uniform(0.1, 0.9, b) * h,
            rng.uniform(0.15, 0.6, b) * side,
            rng.uniform(0, 0.2, (b, 3)),
            rng.uniform(0, 2 * np.pi, (b, 3)),
            rng.uniform(0.5, 3.0, b),  # px of soft edge: a depth edge is sharp, the blur's own spread softens it
        ])  # fmt: skip
    return Plan(
        kinds, extents, background, foreground, blob, has_object, boost, noise, gamma, jpeg, gray, seed, margin,
        soften, defocus, focus,
    )  # fmt: skip


def _grid(maps: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, canvas_hw: tuple[int, int]) -> torch.Tensor:
    """Sampling grids (B, h, w, 2) in grid_sample's [-1, 1] units from maps (B, 3, 3) of output pixels
    (``xs``, ``ys``: (h, w)) to canvas pixels."""
    ch, cw = canvas_hw
    m = maps[:, :, :, None, None]
    z = m[:, 2, 0] * xs + m[:, 2, 1] * ys + m[:, 2, 2]
    gx = (m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]) / z * (2 / (cw - 1)) - 1
    gy = (m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]) / z * (2 / (ch - 1)) - 1
    return torch.stack([gx, gy], dim=-1)


def _blob_mask(b: torch.Tensor, canvas_hw: tuple[int, int]) -> torch.Tensor:
    """The objects' soft masks (B, 1, H, W) on their canvases, at rest: discs whose radius wobbles with
    three harmonics of the angle (see :attr:`Plan.blob`). They move with the objects (grid_sample)."""
    ys, xs = (torch.arange(n, dtype=b.dtype, device=b.device) for n in canvas_hw)
    x = xs[None, None, :] - b[:, 0, None, None]
    y = ys[None, :, None] - b[:, 1, None, None]
    r, angle = torch.sqrt(x * x + y * y), torch.atan2(y, x)
    wobble = 1 + sum(b[:, 3 + k, None, None] * torch.cos((k + 2) * angle + b[:, 6 + k, None, None]) for k in range(3))
    inside = b[:, 2, None, None] * wobble - r  # px from the edge, > 0 inside
    return torch.sigmoid(inside / b[:, 9, None, None])[:, None]


def _softened(images: torch.Tensor, sigmas: NDArray[np.float64]) -> torch.Tensor:
    """``images`` (B, C, H, W) with sample ``b`` blurred by a Gaussian of ``sigmas[b]`` px (0: as it is;
    ``images`` itself when no sample is softened)."""
    chosen = np.flatnonzero(sigmas > 0)
    if not len(chosen):
        return images
    out = images.clone()
    for i in chosen:
        out[i] = gaussian_filter(images[i], float(sigmas[i]), truncate=3.0)
    return out


def render(
    sharp: torch.Tensor, objects: torch.Tensor, plan: Plan, out_hw: tuple[int, int], eight_bit: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, sharp) float (B, 3, h, w) in [0, 1] from sharp canvases and object canvases (B, 3, H, W)
    in [0, 1] (sRGB), following ``plan``; the output is the canvases' centre. The target is the frame at
    rest (every map the identity): the middle sub-frame, where the paths' mean also lies. The blurred
    frames are rounded to 8 bits as a photo's are (``eight_bit=False``: not, for 16-bit sources). Runs on
    the canvases' device."""
    device = sharp.device
    h, w = out_hw
    canvas = tuple(sharp.shape[-2:])
    as_t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    gamma = as_t(plan.gamma)[:, None, None, None]
    gray = as_t(plan.gray, torch.bool)[:, None, None, None]
    sharp = torch.where(gray, sharp.mean(1, keepdim=True).expand_as(sharp), sharp)
    objects = torch.where(gray, objects.mean(1, keepdim=True).expand_as(objects), objects)
    sharp, objects = _softened(sharp, plan.soften), _softened(objects, plan.soften)
    out_of_focus = np.flatnonzero(plan.defocus > 0)
    if len(out_of_focus):
        where = torch.as_tensor(out_of_focus, device=device)
        in_focus = _blob_mask(as_t(plan.focus)[where], canvas)
        sharp[where] = in_focus * sharp[where] + (1 - in_focus) * _softened(sharp[where], plan.defocus[out_of_focus])

    def linear(srgb: torch.Tensor) -> torch.Tensor:
        """Linear light, with highlights near white made brighter than white (they clip after averaging)."""
        lin = srgb.clamp(0, 1) ** gamma
        bright = torch.clamp((srgb.amax(1, keepdim=True) - 0.96) / 0.04, 0, 1)
        return lin * (1 + as_t(plan.boost)[:, None, None, None] * bright)

    background = linear(sharp)
    n = plan.background.shape[1]
    maps_bg, maps_fg = as_t(plan.background), as_t(plan.foreground)
    movers = torch.as_tensor(np.flatnonzero(plan.has_object), device=device)  # samples with a moving object
    if len(movers):  # the objects in linear light, their masks as a fourth channel: one warp moves both
        objs = torch.cat([linear(objects)[movers], _blob_mask(as_t(plan.blob)[movers], canvas)], dim=1)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=device),
        torch.arange(w, dtype=torch.float32, device=device),
        indexing="ij",
    )

    def frame_at(bg: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
        """One sub-frame: the background through maps ``bg``, the moving objects through ``fg`` over it."""
        frame = F.grid_sample(background, _grid(bg, xs, ys, canvas), padding_mode="reflection", align_corners=True)
        if len(movers):
            moved = F.grid_sample(
                objs, _grid(fg[movers], xs, ys, canvas), padding_mode="reflection", align_corners=True
            )
            frame[movers] = frame[movers] + moved[:, 3:] * (moved[:, :3] - frame[movers])
        return frame

    total = torch.zeros(sharp.shape[0], 3, h, w, device=device)
    for i in range(n):
        total += frame_at(maps_bg[:, i], maps_fg[:, i])
    rest = as_t(np.tile(_translation(plan.margin, plan.margin), (sharp.shape[0], 1, 1)))  # the sharp frame's pose
    target = frame_at(rest, rest)
    blurred_lin = (total / n).clamp(0, 1)
    generator = torch.Generator().manual_seed(plan.seed)
    normal = torch.randn(blurred_lin.shape, generator=generator).to(device)
    level = as_t(plan.noise)[:, None, None, None]
    variance = level * (8.89e-5 * blurred_lin + 2.94e-5)  # RSBlur's Poisson-Gaussian fit, scaled
    noisy = torch.where(blurred_lin >= 1, blurred_lin, blurred_lin + variance.sqrt() * normal)
    noisy = torch.where(gray, noisy.mean(1, keepdim=True).expand_as(noisy), noisy)
    blurred = noisy.clamp(0, 1) ** (1 / gamma)
    sharp_out = target.clamp(0, 1) ** (1 / gamma)
    blurred = jpeg_compress(blurred, torch.as_tensor(plan.jpeg))
    return (torch.round(blurred * 255) / 255 if eight_bit else blurred), sharp_out


# -- JPEG -----------------------------------------------------------------------------------------------
_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]).reshape(8, 8)  # fmt: skip
_CHROMA = np.full((8, 8), 99)
_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _quant_table(base: NDArray, quality: int) -> NDArray:
    """The IJG scaling of a quantisation table to ``quality`` (1..100)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


def _dct_matrix() -> NDArray:
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    d = np.cos((2 * n + 1) * k * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


def _blocks_roundtrip(plane: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """DCT-quantise-inverse of (B, H, W) planes in 8 x 8 blocks with per-sample tables (B, 8, 8)."""
    b, h, w = plane.shape
    ph, pw = -h % 8, -w % 8
    x = F.pad(plane[:, None], (0, pw, 0, ph), mode="replicate")[:, 0]
    hh, ww = x.shape[-2:]
    blocks = x.reshape(b, hh // 8, 8, ww // 8, 8).permute(0, 1, 3, 2, 4)
    d = torch.as_tensor(_dct_matrix(), dtype=plane.dtype, device=plane.device)
    q = tables[:, None, None]
    coef = torch.round(d @ blocks @ d.T / q) * q
    back = (d.T @ coef @ d).permute(0, 1, 3, 2, 4).reshape(b, hh, ww)
    return back[:, :h, :w]


def jpeg_compress(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """A JPEG round trip (baseline, 4:2:0, IJG tables) of (B, 3, H, W) in [0, 1]; quality 0 leaves a sample
    as it is."""
    chosen = quality > 0
    if not bool(chosen.any()):
        return images
    x = images[chosen.to(images.device)] * 255
    q = [int(v) for v in quality[chosen]]
    luma = torch.as_tensor(np.stack([_quant_table(_LUMA, v) for v in q]), dtype=x.dtype, device=x.device)
    chroma = torch.as_tensor(np.stack([_quant_table(_CHROMA, v) for v in q]), dtype=x.dtype, device=x.device)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    h, w = y.shape[-2:]
    y = _blocks_roundtrip(y - 128, luma) + 128

    def chroma_roundtrip(c: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(F.pad(c[:, None], (0, w % 2, 0, h % 2), mode="replicate"), 2)[:, 0]
        small = _blocks_roundtrip(small - 128, chroma) + 128
        return F.interpolate(small[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0, :h, :w]

    cb, cr = chroma_roundtrip(cb), chroma_roundtrip(cr)
    rgb = torch.stack(
        [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], 1
    )
    out = images.clone()
    out[chosen.to(images.device)] = (torch.round(rgb.clamp(0, 255)) / 255).to(images.dtype)
    return out
