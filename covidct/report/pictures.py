"""The run report's pictures: a picture record, file-name-safe names, copying a PNG beside the
page. Shared by :mod:`covidct.report.html_report` and :mod:`covidct.report.gradcam_report`,
which both stand above it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Picture:
    """One PNG of the report: file name (relative to the report) and caption."""

    file: str
    caption: str


def slug(name: str) -> str:
    """A file-name-safe form of a backbone name (letters, digits, ``._-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return cleaned or "model"


def copy_picture(out_dir: Path, source: Path, name: str) -> str:
    """Copy ``source`` PNG into ``out_dir`` as ``name`` (unless it is already that file).

    Raises FileNotFoundError naming ``source`` when it does not exist.
    """
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"picture {source} does not exist")
    target = Path(out_dir) / name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return name
