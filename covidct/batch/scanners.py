"""Scanner (hospital) profiles of the synthetic phantom (:mod:`covidct.batch.synth`): how a
scanner renders the same patient. Light on imports, so the CLI can list the names.

* ``negin`` (default): the look of earlier releases: 12 HU white noise, no kernel filter, the
  roster's slice thicknesses;
* ``soft-thick``: a soft kernel (Gaussian blur, sigma 1.2 px), 8 HU noise after the kernel
  (correlated), 8 mm slices;
* ``sharp-thin``: a sharp lung kernel (unsharp mask, amount 0.8, sigma 1 px), 25 HU white noise,
  1.5 mm slices.

Thin slices and sharp kernels are noisier, thick slices and soft kernels smoother; the numbers are
illustrative, not measured on named scanners.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scanner(StrEnum):
    """Named scanner (hospital) profiles; see :data:`SCANNERS`."""

    NEGIN = "negin"
    SOFT_THICK = "soft-thick"
    SHARP_THIN = "sharp-thin"


@dataclass(frozen=True)
class ScannerProfile:
    """How a scanner renders the phantom.

    ``noise_sd_hu``: sd of the noise in a uniform region (after the kernel), HU;
    ``blur_sigma_px``: Gaussian blur of a soft kernel (0: none); ``sharpen``: unsharp-mask amount
    of a sharp kernel (0: none); ``thickness_mm``: slice thickness and spacing of every series
    (None: the roster's, as published).
    """

    noise_sd_hu: float
    blur_sigma_px: float = 0.0
    sharpen: float = 0.0
    thickness_mm: float | None = None


SCANNERS: dict[Scanner, ScannerProfile] = {
    Scanner.NEGIN: ScannerProfile(noise_sd_hu=12.0),
    Scanner.SOFT_THICK: ScannerProfile(noise_sd_hu=8.0, blur_sigma_px=1.2, thickness_mm=8.0),
    Scanner.SHARP_THIN: ScannerProfile(noise_sd_hu=25.0, sharpen=0.8, thickness_mm=1.5),
}


def parse_scanner(name: str | Scanner) -> Scanner:
    """``name`` as a :class:`Scanner`; ValueError listing the valid names when unknown."""
    try:
        return Scanner(name)
    except ValueError:
        raise ValueError(
            f"unknown scanner {name!r}; valid: {[member.value for member in Scanner]}"
        ) from None
