"""COVID-19 lesions and their look-alikes as 3-D objects in a synthetic patient
(:mod:`covidct.batch.synth`, whose docstring gives the sources and rates): severity, finding
types, placement in the lungs, and drawing one slice's cut of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from covidct import schema
from covidct.batch.phantom import (
    LUNG_HEIGHT_MM,
    LUNG_HU,
    PIXEL_MM,
    SIZE,
    Anatomy,
    apply_scanner,
    draw_vessels,
    lung_centres,
    lung_mask,
    lung_radii,
    pixel_grid,
)
from covidct.batch.scanners import ScannerProfile

#: Severity bands of Positive patients: name -> [low, high) percent of the lung involved.
BANDS: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "mild": (0.0, 5.0),
    "moderate": (5.0, 25.0),
    "severe": (25.0, 100.0),
}
#: Share of Positive patients with a normal CT (Chung et al. 2020: 3 of 21).
NORMAL_CT_RATE = 3 / 21
#: MosMedData CT-1..CT-4 counts (Morozov et al. 2020) and their percent ranges.
MOSMED_COUNTS: tuple[tuple[int, float, float], ...] = (
    (684, 0.5, 25.0),
    (125, 25.0, 50.0),
    (45, 50.0, 75.0),
    (2, 75.0, 90.0),
)
#: Per abnormal Positive patient: bilateral, peripheral-predominant (Shi et al. 2020), rounded
#: GGO, consolidation, crazy paving (Chung et al. 2020, of 18 abnormal CTs).
BILATERAL_RATE, PERIPHERAL_RATE = 0.79, 0.54
ROUNDED_RATE, CONSOLIDATION_RATE, CRAZY_PAVING_RATE = 7 / 18, 6 / 18, 4 / 18
#: Look-alike rates per patient (nodule: ~NLST baseline; the others: modelling choices).
LOOKALIKE_RATES: dict[str, float] = {"nodule": 0.27, "atelectasis": 0.20, "emphysema": 0.15}
LESION_KINDS = ("ggo_peripheral", "ggo_central", "ggo_rounded")
FINDINGS = (*LESION_KINDS, "consolidation", "crazy_paving")
MAX_LESIONS = 60
#: Noise-field grid (z levels, rows, columns); pixel (px) and z levels of the involvement grid.
_NOISE_SHAPE, _COARSE, _LEVELS = (32, 64, 64), 4, 64
_EDGE = 0.15  # soft margin width, in units of the normalised lesion radius


@dataclass(frozen=True)
class _Object:
    """A 3-D ellipsoid in the patient: a lesion or a look-alike.

    ``centre`` (row, column) px; ``radii`` (along ``angle``, across) px, ``angle`` the direction
    of the first axis in (row, column) radians; ``z``/``z_radius`` mm. ``hu``: value reached
    inside; ``darker``: painted with min (emphysema) instead of max. ``core``: normalised radius
    of a consolidation core (0: none) of ``core_hu``; ``septa``: Voronoi seeds (k, 2) px of a
    crazy-paving network raising ``septa_hu``.
    """

    kind: str
    centre: tuple[float, float]
    radii: tuple[float, float]
    angle: float
    z: float
    z_radius: float
    hu: float
    roughness: float
    darker: bool = False
    core: float = 0.0
    core_hu: float = 0.0
    septa: np.ndarray | None = None
    septa_hu: float = 0.0

    def reach(self) -> float:
        """Largest in-plane distance (px) from the centre the object can reach."""
        return max(self.radii) * (1.0 + 2.0 * self.roughness) + 2.0

    def meets(self, z: float) -> bool:
        """Whether the object can cut the slice at height ``z`` (mm)."""
        return abs(z - self.z) < self.z_radius * (1.0 + 2.0 * self.roughness)

    def q(self, rows: np.ndarray, cols: np.ndarray, z: float, noise: np.ndarray) -> np.ndarray:
        """Normalised radius (1 at the margin) at pixels ``rows, cols`` of height ``z``."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        dr, dc = rows - self.centre[0], cols - self.centre[1]
        along = (dr * cos + dc * sin) / self.radii[0]
        across = (dc * cos - dr * sin) / self.radii[1]
        height = (z - self.z) / self.z_radius
        return np.sqrt(along**2 + across**2 + height**2) + self.roughness * noise


@dataclass
class _Plan:
    """One patient's 3-D truth: severity, findings, lesions, look-alikes, margin noise."""

    band: str = "none"
    target_percent: float = 0.0
    reached_percent: float = 0.0  # coarse whole-lung estimate of the lesions drawn
    bilateral: bool = False
    lesions: list[_Object] = field(default_factory=list)
    lookalikes: list[_Object] = field(default_factory=list)
    noise: np.ndarray | None = None  # float32 _NOISE_SHAPE, unit sd, clipped to +-2

    def findings(self) -> list[str]:
        """Finding names present, in :data:`FINDINGS` order."""
        present = {lesion.kind for lesion in self.lesions}
        present |= {"consolidation"} if any(x.core > 0 for x in self.lesions) else set()
        present |= {"crazy_paving"} if any(x.septa is not None for x in self.lesions) else set()
        return [name for name in FINDINGS if name in present]

    def lookalike_names(self) -> list[str]:
        """Look-alike kinds present, in :data:`LOOKALIKE_RATES` order."""
        present = {item.kind for item in self.lookalikes}
        return [name for name in LOOKALIKE_RATES if name in present]


def _noise_field(rng: np.random.Generator) -> np.ndarray:
    raw = rng.standard_normal(_NOISE_SHAPE, dtype=np.float32)
    smooth = ndimage.gaussian_filter(raw, sigma=(0.8, 1.0, 1.0), mode="wrap")
    smooth /= max(float(smooth.std()), 1e-6)
    return np.clip(smooth, -2.0, 2.0)


def _noise_plane(noise: np.ndarray, z: float) -> np.ndarray:
    """The noise field at height ``z`` (mm), coarse (rows, columns)."""
    position = min(max(z / LUNG_HEIGHT_MM, 0.0), 1.0) * (_NOISE_SHAPE[0] - 1)
    low = min(int(position), _NOISE_SHAPE[0] - 2)
    weight = np.float32(position - low)
    return (1 - weight) * noise[low] + weight * noise[low + 1]


def _severity(rng: np.random.Generator) -> tuple[str, float]:
    """(band, percent of the lung involved) of one Positive patient."""
    if rng.random() < NORMAL_CT_RATE:
        return "none", 0.0
    weights = np.array([count for count, _, _ in MOSMED_COUNTS], dtype=float)
    _, low, high = MOSMED_COUNTS[int(rng.choice(len(weights), p=weights / weights.sum()))]
    if low < 1.0:
        percent = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    else:
        percent = float(rng.uniform(low, high))
    band = next(name for name, (lo, hi) in BANDS.items() if name != "none" and lo <= percent < hi)
    return band, percent


class _Geometry:
    """Lung geometry of one patient for placing objects, and the coarse involvement estimate
    (nominal ellipsoids, without their rough margins, on a grid of 4 px and ~4 mm)."""

    def __init__(self, body: Anatomy) -> None:
        self.body = body
        self.centres = lung_centres(body)
        self.radii = lung_radii(body, 0.96)
        lungs = lung_mask(body, 0.96)
        n = SIZE // _COARSE
        self.coarse_lung = lungs.reshape(n, _COARSE, n, _COARSE).mean(axis=(1, 3)) > 0.5
        self.levels = np.linspace(0.0, LUNG_HEIGHT_MM, _LEVELS)
        self.occupied = np.zeros((_LEVELS, n, n), dtype=bool)
        self.cells = float(self.coarse_lung.sum()) * _LEVELS
        centres = np.arange(n, dtype=np.float32) * _COARSE + (_COARSE - 1) / 2
        self.rows, self.cols = np.meshgrid(centres, centres, indexing="ij")
        self.flat = np.zeros((n, n), dtype=np.float32)
        self.volume_mm3 = float(lungs.sum()) * PIXEL_MM**2 * LUNG_HEIGHT_MM

    def involvement(self) -> float:
        """Percent of the coarse lung volume covered by the objects added so far."""
        return 100.0 * float(self.occupied.sum()) / max(self.cells, 1.0)

    def add(self, item: _Object) -> None:
        """Mark ``item``'s coarse cells as occupied."""
        for k in np.nonzero(np.abs(self.levels - item.z) <= item.z_radius)[0]:
            q = item.q(self.rows, self.cols, float(self.levels[k]), self.flat)
            self.occupied[k] |= (q < 1.0) & self.coarse_lung

    def point(self, side: int, rho: float, phi: float) -> tuple[float, float]:
        """Point at normalised radius ``rho`` and angle ``phi`` (0 posterior, + lateral)."""
        (ly, lx), (ry, rx) = self.centres[side], self.radii
        lateral = -1.0 if side == 0 else 1.0
        return ly + rho * ry * math.cos(phi), lx + lateral * rho * rx * math.sin(phi)

    def tangent(self, side: int, phi: float) -> float:
        """Direction (radians, in row/column) of the pleura at angle ``phi``."""
        ry, rx = self.radii
        lateral = -1.0 if side == 0 else 1.0
        return math.atan2(lateral * rx * math.cos(phi), -ry * math.sin(phi))


def _beta_height(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.beta(a, b)) * LUNG_HEIGHT_MM


def _lesion(
    geometry: _Geometry, rng: np.random.Generator, kind: str, side: int, scale: float
) -> _Object:
    """One COVID-19 GGO lesion of ``kind`` in lung ``side`` (0 image-left, 1 image-right)."""
    hu, roughness = float(rng.uniform(-700, -300)), float(rng.uniform(0.25, 0.4))
    z = _beta_height(rng, 2.2, 1.3)
    if kind == "ggo_rounded":
        radius = float(rng.uniform(5, 15)) * scale / PIXEL_MM
        centre = geometry.point(side, float(rng.uniform(0.35, 0.85)), float(rng.vonmises(0.5, 0.7)))
        ratio = float(rng.uniform(0.85, 1.15))
        radii, angle = (radius * ratio, radius / ratio), float(rng.uniform(0, math.pi))
        z_radius = radius * PIXEL_MM * float(rng.uniform(0.85, 1.15))
    elif kind == "ggo_peripheral":
        across = float(rng.uniform(5, 15)) * scale / PIXEL_MM
        along = min(across * float(rng.uniform(2.0, 3.5)), 0.9 * geometry.radii[0])
        phi = float(rng.vonmises(0.5, 1.0))
        rim = geometry.point(side, 1.0, phi)
        inward = geometry.point(side, 0.0, phi)
        length = math.hypot(inward[0] - rim[0], inward[1] - rim[1])
        depth = across * float(rng.uniform(0.3, 0.8)) / max(length, 1.0)
        centre = (rim[0] + depth * (inward[0] - rim[0]), rim[1] + depth * (inward[1] - rim[1]))
        radii, angle = (along, across), geometry.tangent(side, phi)
        z_radius = along * PIXEL_MM * float(rng.uniform(0.7, 1.3))
    else:  # ggo_central
        across = float(rng.uniform(5, 12)) * scale / PIXEL_MM
        radii = (across * float(rng.uniform(1.2, 2.0)), across)
        centre = geometry.point(side, float(rng.uniform(0.0, 0.55)), float(rng.uniform(-3, 3)))
        angle, z_radius = float(rng.uniform(0, math.pi)), radii[0] * PIXEL_MM
    return _Object(kind, centre, radii, angle, z, z_radius, hu, roughness)


def _with_core(item: _Object, rng: np.random.Generator) -> _Object:
    core = float(rng.uniform(0.45, 0.7))
    return _replace(item, core=core, core_hu=float(rng.uniform(-100, 50)))


def _with_septa(item: _Object, rng: np.random.Generator) -> _Object:
    reach = item.reach()
    cell = float(rng.uniform(13, 20)) / PIXEL_MM
    count = max(int((2 * reach / cell) ** 2), 4)
    offsets = rng.uniform(-reach, reach, size=(count, 2))
    seeds = np.asarray(item.centre, dtype=np.float64) + offsets
    return _replace(item, septa=seeds, septa_hu=float(rng.uniform(150, 250)))


def _replace(item: _Object, **changes: Any) -> _Object:
    values = {name: getattr(item, name) for name in item.__dataclass_fields__}
    return _Object(**{**values, **changes})


def _shrink_to(item: _Object, geometry: _Geometry, remaining: float) -> _Object:
    """``item`` scaled down (not below 3 mm) so its volume stays near ``remaining`` percent."""
    volume = 4 / 3 * math.pi * item.radii[0] * item.radii[1] * PIXEL_MM**2 * item.z_radius
    percent = 100.0 * 0.7 * volume / geometry.volume_mm3
    if percent <= 1.3 * remaining:
        return item
    factor = max((1.3 * remaining / percent) ** (1 / 3), 3.0 / (min(item.radii) * PIXEL_MM))
    factor = min(factor, 1.0)
    radii = (item.radii[0] * factor, item.radii[1] * factor)
    return _replace(item, radii=radii, z_radius=item.z_radius * factor)


def _plan_lesions(plan: _Plan, geometry: _Geometry, rng: np.random.Generator) -> None:
    """COVID-19 lesions up to ``plan.target_percent`` of the lung (coarse estimate)."""
    bilateral = bool(rng.random() < BILATERAL_RATE)
    peripheral = bool(rng.random() < PERIPHERAL_RATE)
    rounded = bool(rng.random() < ROUNDED_RATE)
    consolidation = bool(rng.random() < CONSOLIDATION_RATE)
    paving = bool(rng.random() < CRAZY_PAVING_RATE)
    scale = 1.0 + 3.0 * math.sqrt(plan.target_percent / 100.0)
    single_side, sides = int(rng.integers(2)), set()
    while len(plan.lesions) < MAX_LESIONS and geometry.involvement() < plan.target_percent:
        index = len(plan.lesions)
        side = single_side
        if bilateral:
            side = index % 2 if index < 2 else int(rng.integers(2))
        if rounded and (index == 0 or rng.random() < 0.6):
            kind = "ggo_rounded"
        elif peripheral or rng.random() < 0.5:
            kind = "ggo_peripheral"
        else:
            kind = "ggo_central"
        item = _lesion(geometry, rng, kind, side, scale)
        if consolidation and (index == 0 or rng.random() < 0.5):
            item = _with_core(item, rng)
        if paving and (index == 0 or rng.random() < 0.5):
            item = _with_septa(item, rng)
        item = _shrink_to(item, geometry, plan.target_percent - geometry.involvement())
        geometry.add(item)
        plan.lesions.append(item)
        sides.add(side)
    plan.bilateral = len(sides) == 2
    plan.reached_percent = geometry.involvement()


def _plan_lookalikes(plan: _Plan, geometry: _Geometry, rng: np.random.Generator) -> None:
    draws = {name: bool(rng.random() < rate) for name, rate in LOOKALIKE_RATES.items()}
    if draws["nodule"]:
        radius = math.exp(rng.uniform(math.log(4.0), math.log(20.0))) / 2 / PIXEL_MM
        side = int(rng.integers(2))
        centre = geometry.point(side, float(rng.uniform(0.1, 0.8)), float(rng.uniform(-3, 3)))
        z = float(rng.uniform(0.05, 0.95)) * LUNG_HEIGHT_MM
        plan.lookalikes.append(
            _Object(
                "nodule", centre, (radius, radius), 0.0, z, radius * PIXEL_MM,
                float(rng.uniform(0, 60)), float(rng.uniform(0.03, 0.08)),
            )
        )  # fmt: skip
    if draws["atelectasis"]:
        z = float(rng.uniform(0.75, 0.92)) * LUNG_HEIGHT_MM
        z_radius = float(rng.uniform(25, 50))
        for side in (0, 1):
            phi = float(rng.uniform(-0.25, 0.25))
            across = float(rng.uniform(2.5, 6.0)) / PIXEL_MM
            along = float(rng.uniform(25, 50)) / PIXEL_MM
            rim = geometry.point(side, 1.0 - 0.3 * across / geometry.radii[0], phi)
            plan.lookalikes.append(
                _Object(
                    "atelectasis", rim, (along, across), geometry.tangent(side, phi), z,
                    z_radius, float(rng.uniform(-550, -150)), 0.2,
                )
            )  # fmt: skip
    if draws["emphysema"]:
        for _ in range(int(rng.integers(10, 31))):
            radius = float(rng.uniform(2, 6)) / PIXEL_MM
            side = int(rng.integers(2))
            centre = geometry.point(side, float(rng.uniform(0.1, 0.9)), float(rng.uniform(-3, 3)))
            plan.lookalikes.append(
                _Object(
                    "emphysema", centre, (radius, radius), 0.0, _beta_height(rng, 1.3, 2.5),
                    radius * PIXEL_MM, float(rng.uniform(-990, -955)), 0.15, darker=True,
                )
            )  # fmt: skip


def plan_patient(body: Anatomy, covid: bool, rng: np.random.Generator) -> _Plan:
    """Severity, lesions (Positive only) and look-alikes (everyone) of one patient."""
    plan = _Plan(noise=_noise_field(rng))
    geometry = _Geometry(body)
    if covid:
        plan.band, plan.target_percent = _severity(rng)
        _plan_lesions(plan, geometry, rng)
    _plan_lookalikes(plan, geometry, rng)
    return plan


def _paint_object(
    hu: np.ndarray,
    lungs: np.ndarray,
    truth: np.ndarray,
    item: _Object,
    z: float,
    noise: np.ndarray,
) -> None:
    """Draw ``item``'s cut at height ``z`` into ``hu`` and its mask into ``truth``, in place."""
    reach = item.reach()
    (cy, cx) = item.centre
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, SIZE)
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, SIZE)
    if r0 >= r1 or c0 >= c1:
        return
    inside = lungs[r0:r1, c0:c1]
    if not inside.any():
        return
    rows, cols = pixel_grid()
    box_noise = noise[r0:r1, c0:c1]
    q = item.q(rows[r0:r1, c0:c1], cols[r0:r1, c0:c1], z, box_noise)
    weight = np.clip((1.0 - q) / _EDGE, 0.0, 1.0) * inside
    if not weight.any():
        return
    value = LUNG_HU + weight * (item.hu + 25.0 * box_noise - LUNG_HU)
    if item.core > 0:
        core = np.clip((item.core - q) / _EDGE, 0.0, 1.0) * inside
        value = value + core * (item.core_hu - item.hu)
    if item.septa is not None:
        tree = cKDTree(item.septa)
        points = np.column_stack([rows[r0:r1, c0:c1].ravel(), cols[r0:r1, c0:c1].ravel()])
        distances, _ = tree.query(points, k=2)
        line = (distances[:, 1] - distances[:, 0]).reshape(q.shape) < 2.0
        raised = np.maximum(value, np.minimum(value + weight * item.septa_hu, -100.0))
        value = np.where(line, raised, value)
    patch = hu[r0:r1, c0:c1]
    painted = weight > 0
    if item.darker:
        patch[painted] = np.minimum(patch[painted], value[painted])
    else:
        patch[painted] = np.maximum(patch[painted], value[painted])
    truth[r0:r1, c0:c1] |= (weight >= 0.5) & inside


@dataclass(frozen=True)
class _Drawn:
    """One drawn slice: its stored values and its truth masks."""

    image: np.ndarray  # uint16 (512, 512)
    lungs: np.ndarray  # bool (512, 512)
    lesion: np.ndarray  # bool (512, 512)
    lookalike: np.ndarray  # bool (512, 512)


def draw_slice(
    body: Anatomy,
    openness: float,
    z: float | None,
    plan: _Plan,
    profile: ScannerProfile,
    rng: np.random.Generator,
) -> _Drawn:
    """One slice at lung ``openness``; lesions and look-alikes at height ``z`` (None: closed)."""
    hu = body.base.copy()
    lungs = lung_mask(body, openness)
    lesion = np.zeros(hu.shape, dtype=bool)
    lookalike = np.zeros(hu.shape, dtype=bool)
    hu[lungs] = LUNG_HU
    if lungs.any():
        draw_vessels(hu, lungs, rng, count=int(30 * openness**2) + 1)
        if z is not None and plan.noise is not None:
            items = [(x, lookalike) for x in plan.lookalikes if x.meets(z)]
            items += [(x, lesion) for x in plan.lesions if x.meets(z)]
            if items:
                coarse = _noise_plane(plan.noise, z)
                noise = ndimage.zoom(coarse, SIZE / coarse.shape[0], order=1)
                for item, truth in items:
                    _paint_object(hu, lungs, truth, item, z, noise)
    apply_scanner(hu, profile, rng)
    values = np.rint(hu + np.float32(schema.HU_OFFSET))
    image = np.clip(values, 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return _Drawn(image, lungs, lesion, lookalike)
