"""A seeded synthetic product line: round machined metal parts, some with defects.

Used by the tests and the bundled demo. Every random draw comes from the generator passed in,
so the same seed always gives bit-identical images. The part's pose and shape are kept in
:class:`PartGeometry`; :func:`render_part_3d` adds the organized XYZ map a structured-light
sensor 0.6 m above a slightly tilted table would measure on the same pixel grid: a 15 mm high
disk, 45-degree bevel at the rim, chamfered through-bore, 0.1 mm noise, missing points at walls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from engine.errors import InvalidInputError

DEFECT_TYPES = ("scratch", "spot", "missing")
DEFECT_TYPES_3D = ("dent", "bump")
_ALL_TYPES = (None, *DEFECT_TYPES, *DEFECT_TYPES_3D)  # position = per-type seed; never reorder
_MIN_SIZE = 64
_METAL_TINT = np.array([0.97, 1.0, 1.05], dtype=np.float32)
_STAIN_TINT = np.array([0.55, 0.42, 0.30], dtype=np.float32)  # rust-brown


@dataclass(frozen=True)
class PartGeometry:
    """Pose and shape of one rendered part, in pixels of its image.

    Attributes:
        size: Image side.
        cx: Centre column.
        cy: Centre row.
        radius: Outer rim radius.
        bore_radius: Radius of the through-hole in the middle.
        bevel: Radial width of the bevelled band at the rim.
        angle: Rotation of the part (radians); turns the knurl and the brushing streaks.
    """

    size: int
    cx: float
    cy: float
    radius: float
    bore_radius: float
    bevel: float
    angle: float

    def polar(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel radius and angle (in the part's own frame) of pixel centres, float32."""
        rows, cols = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
        dx, dy = cols - self.cx, rows - self.cy
        return np.hypot(dx, dy), np.arctan2(dy, dx) - np.float32(self.angle)

    def surface(self) -> np.ndarray:
        """Boolean (size, size) map of the pixels covered by the intact part."""
        radius, _ = self.polar()
        return (radius >= self.bore_radius) & (radius <= self.radius)


def sample_geometry(rng: np.random.Generator, size: int = 256) -> PartGeometry:
    """Draw a part pose: a few pixels of shift, any rotation, about 1 % size variation."""
    scale = size / 256
    shift = rng.uniform(-4.0, 4.0, size=2) * scale
    return PartGeometry(
        size=size,
        cx=size / 2 + float(shift[0]),
        cy=size / 2 + float(shift[1]),
        radius=0.38 * size * float(rng.uniform(0.99, 1.01)),
        bore_radius=0.13 * size,
        bevel=0.045 * size,
        angle=float(rng.uniform(0.0, 2 * np.pi)),
    )


def render_part(
    rng: np.random.Generator, size: int = 256, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one part image and its defect mask.

    Args:
        rng: Source of every random draw (``np.random.default_rng(seed)``).
        size: Image side in pixels (at least 64); defect sizes scale with it.
        defect: None for a normal part, else one of :data:`DEFECT_TYPES`.

    Returns:
        (image, mask): (size, size, 3) uint8 RGB and (size, size) bool, all False when normal.
    """
    image, mask, _ = render_part_with_geometry(rng, size, defect)
    return image, mask


def render_part_with_geometry(
    rng: np.random.Generator, size: int = 256, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray, PartGeometry]:
    """Like :func:`render_part`, also returning the part's :class:`PartGeometry`."""
    image, mask, geom, _ = _render_rgb(rng, size, defect)
    return image, mask, geom


def render_part_3d(
    rng: np.random.Generator, size: int = 256, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, PartGeometry]:
    """Render one part as RGB image, organized XYZ map and defect mask on one pixel grid.

    The image equals the RGB-only render of the same seed. A 3D-only defect ("dent", "bump")
    renders a normal image, and its XYZ is the normal twin's XYZ plus the deformation; "scratch"
    and "spot" leave the shape intact; "missing" also removes the bitten material in 3D.

    Args:
        rng: Source of every random draw.
        size: Image side in pixels (at least 64).
        defect: None, one of :data:`DEFECT_TYPES` or one of :data:`DEFECT_TYPES_3D`.

    Returns:
        (image, xyz, mask, geometry): (size, size, 3) uint8 RGB, (size, size, 3) float32 points
        in metres ((0, 0, 0) where the sensor saw nothing), (size, size) bool defect mask.
    """
    rgb_defect = None if defect in DEFECT_TYPES_3D else defect  # _render_rgb checks the name
    image, mask, geom, coverage = _render_rgb(rng, size, rgb_defect)
    part = coverage >= 0.5
    height = _height_map(geom, part)
    # Scene draws precede the deformation's: a dented part's XYZ is its normal twin's plus the dent.
    slope = rng.uniform(-0.04, 0.04, size=2)  # table tilt, up to ~2.3 degrees
    distance = _CAMERA_DISTANCE + rng.uniform(-0.005, 0.005)
    noise = rng.normal(0.0, _DEPTH_NOISE, size=(size, size))
    missing = _missing(height, rng.random((size, size)))  # of the intact shape
    if defect in DEFECT_TYPES_3D:
        change, mask = _deformation(rng, geom, sign=-1.0 if defect == "dent" else 1.0)
        height = height + np.where(part, change, 0.0)
    # Pinhole camera: the ray t*(x, y, 1) meets the plane z = distance - h + sx*x + sy*y at z = t.
    focal = size * _CAMERA_DISTANCE / _FIELD_OF_VIEW
    rays = (np.arange(size, dtype=np.float64) + 0.5 - size / 2) / focal
    ray_y, ray_x = rays[:, None], rays[None, :]
    z = (distance - height) / (1.0 - slope[0] * ray_x - slope[1] * ray_y) + noise
    xyz = np.stack([ray_x * z, ray_y * z, z], axis=-1).astype(np.float32)
    xyz[missing] = 0.0
    return image, xyz, mask & geom.surface(), geom


def _render_rgb(
    rng: np.random.Generator, size: int, defect: str | None
) -> tuple[np.ndarray, np.ndarray, PartGeometry, np.ndarray]:
    """Image, mask, geometry and the final part coverage (after a possible bite)."""
    if defect is not None and defect not in DEFECT_TYPES:
        hint = "it exists only in 3D (its RGB looks normal): use render_part_3d or with_xyz"
        if defect not in DEFECT_TYPES_3D:
            hint = f"expected None or one of {DEFECT_TYPES}, or {DEFECT_TYPES_3D} in 3D"
        raise InvalidInputError(f"synthetic defect {defect!r}: {hint}.")
    if size < _MIN_SIZE:
        raise InvalidInputError(f"synthetic image size {size} is too small; use {_MIN_SIZE}+.")
    geom = sample_geometry(rng, size)
    radius, theta = geom.polar()
    coverage = _coverage(geom, radius)
    part = _metal(rng, geom, radius, theta)
    mask = np.zeros((size, size), dtype=bool)
    if defect == "scratch":
        mask = _add_scratch(rng, geom, part)
    elif defect == "spot":
        mask = _add_spot(rng, geom, part)
    elif defect == "missing":
        mask = _cut_bite(rng, geom, coverage)
    background = _background(rng, size)
    image = background * (1 - coverage[..., None]) + part * coverage[..., None]
    image += rng.normal(0.0, 2.5, size=image.shape).astype(np.float32)  # sensor noise
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return pixels, mask & geom.surface(), geom, coverage


def write_synthetic_dataset(
    out_dir: str | Path,
    n_good: int = 12,
    n_per_defect: int = 4,
    size: int = 256,
    seed: int = 0,
    with_xyz: bool = False,
    defects: Sequence[str] = DEFECT_TYPES,
) -> Path:
    """Write a synthetic dataset in MVTec AD layout, or MVTec 3D-AD layout with XYZ maps.

    Without XYZ: ``test/<type>/000.png``, masks (0/255) in ``ground_truth/<defect>/000_mask.png``.
    With XYZ: ``test/<type>/{rgb,xyz,gt}/000.{png,tiff,png}`` (float32 metres; all-zero gt for
    normal parts). Each part has its own generator seeded with (seed, type, index), so changing a
    count or the defect list leaves the other parts alone; RGB does not depend on ``with_xyz``.

    Args:
        out_dir: Destination folder (created if needed).
        n_good: Number of normal parts.
        n_per_defect: Number of parts per defect type.
        size: Image side in pixels.
        seed: Non-negative seed; the same seed writes identical files.
        with_xyz: Also write XYZ maps (MVTec 3D-AD layout); needed for 3D-only defects.
        defects: Defect types to write, from :data:`DEFECT_TYPES` and :data:`DEFECT_TYPES_3D`.

    Returns:
        ``out_dir`` as a Path.
    """
    allowed = DEFECT_TYPES + (DEFECT_TYPES_3D if with_xyz else ())  # 3D-only ones look normal
    if min(n_good, n_per_defect, seed) < 0 or any(d not in allowed for d in defects):
        raise InvalidInputError(
            f"write_synthetic_dataset: counts and seed must be >= 0 and defects among {allowed} "
            f"({DEFECT_TYPES_3D} need with_xyz=True); got n_good={n_good}, "
            f"n_per_defect={n_per_defect}, seed={seed}, defects={list(defects)}."
        )
    out = Path(out_dir)
    for defect in (None, *dict.fromkeys(defects)):
        name = defect or "good"
        for i in range(n_good if defect is None else n_per_defect):
            rng = np.random.default_rng([seed, _ALL_TYPES.index(defect), i])
            if with_xyz:
                image, xyz, mask, _ = render_part_3d(rng, size, defect)
                _save(out / "test" / name / "rgb" / f"{i:03d}.png", image)
                _save(out / "test" / name / "gt" / f"{i:03d}.png", mask)
                _save(out / "test" / name / "xyz" / f"{i:03d}.tiff", xyz)
                continue
            image, mask = render_part(rng, size, defect)
            _save(out / "test" / name / f"{i:03d}.png", image)
            if defect is not None:
                _save(out / "ground_truth" / defect / f"{i:03d}_mask.png", mask)
    return out


def _save(path: Path, array: np.ndarray) -> None:
    """Save RGB as is, a bool mask as 0/255 grey png, XYZ as float TIFF (as MVTec 3D-AD)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tiff":
        tifffile.imwrite(path, array, photometric="rgb")
        return
    pixels = array.astype(np.uint8) * 255 if array.dtype == bool else array
    Image.fromarray(pixels).save(path, compress_level=1)


# 3D scene in metres. The field of view (80 mm on the table) is fixed, so the part is ~61 mm
# across at any image size. A height step above _EDGE_JUMP is a wall the sensor often misses.
_CAMERA_DISTANCE, _FIELD_OF_VIEW, _PART_HEIGHT, _DEPTH_NOISE = 0.6, 0.08, 0.015, 1e-4
_EDGE_JUMP, _EDGE_DROPOUT, _RANDOM_DROPOUT = 0.002, 0.5, 5e-4  # jump; missing share: walls, all


def _height_map(geom: PartGeometry, part: np.ndarray) -> np.ndarray:
    """Height above the table (metres) of every pixel: disk, 45-degree bevel, chamfered bore."""
    radius = geom.polar()[0].astype(np.float64)  # float64: a dent adds to it without rounding
    pitch = _FIELD_OF_VIEW / geom.size
    chamfer = 3 * geom.size / 256  # the bright machined ring round the bore in the RGB image
    drop = np.maximum(radius - (geom.radius - geom.bevel), 0.0)
    drop = np.maximum(drop, geom.bore_radius + chamfer - radius)
    return np.where(part, _PART_HEIGHT - drop * pitch, 0.0)


def _deformation(rng: np.random.Generator, geom: PartGeometry, sign: float) -> tuple:
    """Height change (metres) of a smooth dent (sign -1) or bump (+1) 1-2 mm deep, and its mask.

    Biweight profile depth * (1 - (d/R)^2)^2 (flat at the centre and at d = R); the mask is
    where the change reaches half the depth, a disk of radius 8-15 px (at 256 px).
    """
    scale = geom.size / 256
    depth = rng.uniform(0.001, 0.002)
    mask_radius = rng.uniform(8, 15) * scale
    support = mask_radius / np.sqrt(1 - np.sqrt(0.5))
    center = _surface_point(rng, geom, mask_radius + 2 * scale)
    rows, cols = np.mgrid[0 : geom.size, 0 : geom.size].astype(np.float32)
    dist = np.hypot(cols - center[0], rows - center[1])
    profile = np.clip(1 - (dist / support) ** 2, 0.0, None) ** 2
    return sign * depth * profile, dist <= mask_radius


def _missing(height: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Points the sensor loses: half of those at steep walls (height steps) and a few anywhere."""
    # Walls shadow the projected pattern of a structured-light sensor.
    pad, (rows, cols) = np.pad(height, 1, mode="edge"), height.shape
    shifts = [pad[r : r + rows, c : c + cols] for r, c in ((0, 1), (2, 1), (1, 0), (1, 2))]
    walls = np.max([np.abs(height - shifted) for shifted in shifts], axis=0) > _EDGE_JUMP
    return (walls & (draws < _EDGE_DROPOUT)) | (draws < _RANDOM_DROPOUT)


def _coverage(geom: PartGeometry, radius: np.ndarray) -> np.ndarray:
    """Anti-aliased share of each pixel covered by the part (disk minus bore)."""
    outer = np.clip(geom.radius - radius + 0.5, 0.0, 1.0)
    inner = np.clip(radius - geom.bore_radius + 0.5, 0.0, 1.0)
    return (outer * inner).astype(np.float32)


def _metal(
    rng: np.random.Generator, geom: PartGeometry, radius: np.ndarray, theta: np.ndarray
) -> np.ndarray:
    """Float RGB (0..255) of the metal surface: turning rings, brushing, knurled bevel, light."""
    scale = geom.size / 256
    light = float(rng.normal(-0.75 * np.pi, 0.15))  # lit from the upper left, with jitter
    gain = float(rng.uniform(0.92, 1.08))
    # Brushing: fine radial streaks, a smoothed random profile over the part's own angle.
    profile = np.convolve(rng.normal(0.0, 1.0, 720 + 4), np.ones(5) / 5, mode="valid")
    streaks = profile[((theta % (2 * np.pi)) / (2 * np.pi) * 720).astype(int) % 720]
    rings = np.sin(2 * np.pi * radius / (3.1 * scale) + rng.uniform(0, 2 * np.pi))
    absolute = theta + np.float32(geom.angle)  # the light does not turn with the part
    tilt = np.cos(absolute - light)
    brightness = 0.6 + 0.035 * rings + 0.03 * streaks + 0.06 * tilt * radius / geom.radius
    in_bevel = radius > geom.radius - geom.bevel
    knurl = 0.08 * np.sign(np.sin(theta * 96))
    brightness = np.where(in_bevel, 0.55 + 0.25 * tilt + knurl, brightness)
    chamfer = radius < geom.bore_radius + 3 * scale  # bright machined edge round the bore
    brightness = np.where(chamfer, brightness + 0.15, brightness)
    return (brightness[..., None] * gain * 255 * _METAL_TINT).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    level = float(rng.uniform(22, 32))
    ramp = np.linspace(-4.0, 4.0, size, dtype=np.float32)[None, :, None]  # uneven lighting
    noise = rng.normal(0.0, 2.0, size=(size, size, 1)).astype(np.float32)
    return np.repeat(level + ramp + noise, 3, axis=2)


def _surface_point(rng: np.random.Generator, geom: PartGeometry, margin: float) -> np.ndarray:
    """A random (x, y) on the part at least ``margin`` away from the bore and the rim."""
    r = rng.uniform(geom.bore_radius + margin, geom.radius - margin)
    phi = rng.uniform(0, 2 * np.pi)
    return np.array([geom.cx + r * np.cos(phi), geom.cy + r * np.sin(phi)])


def _window(center: np.ndarray, reach: float, size: int) -> tuple[slice, slice, np.ndarray]:
    """Row/column slices of the square ``center`` +- ``reach``, and its (x, y) pixel centres."""
    x0, y0 = (max(0, int(np.floor(c - reach))) for c in center)
    x1, y1 = (min(size, int(np.ceil(c + reach)) + 1) for c in center)
    rows, cols = slice(y0, y1), slice(x0, x1)
    ys, xs = np.mgrid[rows, cols].astype(np.float32)
    return rows, cols, np.stack([xs, ys], axis=-1)


def _add_scratch(rng: np.random.Generator, geom: PartGeometry, part: np.ndarray) -> np.ndarray:
    """A thin bright or dark curved line; returns its mask (alpha >= 0.5)."""
    scale = geom.size / 256
    length = rng.uniform(20, 60) * scale
    width = rng.uniform(2, 4) * scale
    delta = rng.choice([-0.3, 0.35]) * 255
    t = np.linspace(0.0, 1.0, int(length * 2) + 2)[:, None]
    for _ in range(200):  # redraw until the whole curve lies on the part surface
        mid = _surface_point(rng, geom, width + 2)
        phi = rng.uniform(0, 2 * np.pi)
        along, across = np.array([np.cos(phi), np.sin(phi)]), np.array([-np.sin(phi), np.cos(phi)])
        p0, p2 = mid - along * length / 2, mid + along * length / 2
        p1 = mid + across * rng.uniform(-0.25, 0.25) * length * 2  # Bezier bend
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        r = np.hypot(curve[:, 0] - geom.cx, curve[:, 1] - geom.cy)
        if r.min() > geom.bore_radius + width + 2 and r.max() < geom.radius - width - 2:
            break
        length *= 0.97  # a shorter scratch fits more easily next time
        t = np.linspace(0.0, 1.0, int(length * 2) + 2)[:, None]
    reach = float(np.abs(curve - mid).max()) + width + 2
    rows, cols, pixels = _window(mid, reach, geom.size)
    dist = np.min(np.linalg.norm(pixels[:, :, None, :] - curve[None, None], axis=-1), axis=2)
    alpha = np.clip(width / 2 - dist + 0.5, 0.0, 1.0).astype(np.float32)
    part[rows, cols] += alpha[..., None] * np.float32(delta)
    np.clip(part, 0, 255, out=part)
    return _full_mask(geom.size, rows, cols, alpha >= 0.5)


def _add_spot(rng: np.random.Generator, geom: PartGeometry, part: np.ndarray) -> np.ndarray:
    """A brownish stain blob with an irregular soft edge; returns its mask (alpha >= 0.5)."""
    scale = geom.size / 256
    base = rng.uniform(6, 14) * scale
    strength = rng.uniform(0.75, 0.95)
    phases = rng.uniform(0, 2 * np.pi, size=2)
    center = _surface_point(rng, geom, base * 1.3 + 2)
    rows, cols, pixels = _window(center, base * 1.5 + 2, geom.size)
    offset = pixels - center.astype(np.float32)
    dist, phi = np.hypot(offset[..., 0], offset[..., 1]), np.arctan2(offset[..., 1], offset[..., 0])
    edge = base * (1 + 0.15 * np.sin(2 * phi + phases[0]) + 0.1 * np.sin(3 * phi + phases[1]))
    shape = np.clip((edge - dist) / 1.5 + 0.5, 0.0, 1.0).astype(np.float32)
    alpha = (shape * strength)[..., None]
    patch = part[rows, cols]
    part[rows, cols] = patch * (1 - alpha) + patch * _STAIN_TINT * alpha
    return _full_mask(geom.size, rows, cols, shape >= 0.5)


def _cut_bite(rng: np.random.Generator, geom: PartGeometry, coverage: np.ndarray) -> np.ndarray:
    """Bite a round chunk out of the rim (background shows through); returns the lost area."""
    scale = geom.size / 256
    bite = rng.uniform(12, 20) * scale
    phi = rng.uniform(0, 2 * np.pi)
    reach = geom.radius + bite * rng.uniform(-0.2, 0.3)
    center = np.array([geom.cx + reach * np.cos(phi), geom.cy + reach * np.sin(phi)])
    rows, cols, pixels = _window(center, bite + 1, geom.size)
    dist = np.linalg.norm(pixels - center.astype(np.float32), axis=-1)
    bitten = np.clip(bite - dist + 0.5, 0.0, 1.0).astype(np.float32)
    lost = (coverage[rows, cols] >= 0.5) & (bitten >= 0.5)
    coverage[rows, cols] *= 1 - bitten
    return _full_mask(geom.size, rows, cols, lost)


def _full_mask(size: int, rows: slice, cols: slice, window_mask: np.ndarray) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[rows, cols] = window_mask
    return mask
