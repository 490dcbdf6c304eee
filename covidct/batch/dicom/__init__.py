"""Convert DICOM CT series into a Negin-style batch.

The batch contract: docs/architecture.md, "The Negin-style batch contract".

Input layout: ``dicom_dir/<subject>/<any folders>/<file>``, any depth below the subject
(TCIA's downloads are ``<subject>/<study>/<series>/<file>``). The subject folder name is the
patient id; ``batch.json`` holds the source that namespaces it (``schema.patient_key``). Every
regular file under a subject is read as DICOM (any extension); slices are grouped by DICOM UIDs,
never by folder level. Files directly in ``dicom_dir``, hidden files, symbolic links, special
files and non-DICOM files are skipped with a reason. Nothing is skipped silently: every skipped
file appears in ``IngestReport.skipped`` and in ``batch.json`` (``ingest.skipped``).

Rules, in order:

1. **Series.** Slices are grouped per subject by SeriesInstanceUID (the folder name when absent),
   because a folder may mix studies (COVID-19-NY-SBU's ``axial/`` folders hold one slice from
   each of two studies). A SOPInstanceUID seen twice in a subject keeps its first file.
2. **Slice checks** (all reasons of a slice are reported together): Modality, when present, must
   be CT; one frame, one sample per pixel; ImageOrientationPatient present and axial (row cosine
   within ``AXIAL_TOLERANCE_DEG`` of +-x and column cosine within it of +-y; flipped axial images
   are kept as stored); the transfer syntax decodable by pydicom's installed handlers (else the
   reason names it: the syntax's name and UID). Installed: pydicom's own (uncompressed, RLE),
   GDCM (python-gdcm, BSD-3-Clause: JPEG Lossless Process 14 and SV1, JPEG-LS, JPEG 2000) and
   Pillow (JPEG baseline/extended, JPEG 2000); no GPL decoder (pylibjpeg-libjpeg) is used;
   512x512, or, with ``size_policy="resample"``, any other size resampled.
3. **SR folders.** Series with at least one converted slice are sorted by (SeriesNumber, series
   folder name, first file name) and become SR_2, SR_3, SR_4; later ones are skipped with a
   reason naming their SeriesNumber and folder.
4. **Slice order.** Within a series, slices are ordered from head to feet: by
   ImagePositionPatient z descending (LPS patient coordinates, so IM00001 is the most superior
   slice, the scanner order of the Negin and Lung-PET-CT-Dx series), ties by InstanceNumber; if a
   slice lacks ImagePositionPatient the whole series falls back to InstanceNumber ascending, then
   file name. Files are written ``IM00001.tif ...`` with no gap.
5. **Pixels.** HU = stored x RescaleSlope + RescaleIntercept (PS3.3 C.11.1 Modality LUT); pydicom
   applies PixelRepresentation (signed) and BitsStored. RescaleSlope absent: 1 (pydicom's
   ``apply_modality_lut`` would then apply no rescale at all, turning an intercept-only -1024
   file into HU = stored). Both absent and a ModalityLUTSequence present: that LUT (pydicom
   ``apply_modality_lut``). RescaleIntercept absent otherwise: HU is never guessed (0 and -1024
   are both common intercepts, and the wrong one puts lung at +248 HU instead of -776): the
   slice is skipped with the reason, unless ``assume_intercept`` (CLI ``--assume-intercept``)
   states it; every slice converted with an assumed tag is listed in ``batch.json``
   (``ingest.assumptions``). Negin value =
   ``clip(rint(HU + 1024), 0, 65535)`` as uint16 (round half to even), so the output follows
   HU = value - 1024 whatever the file's intercept (0 or -1024). Padding below -1024 HU (e.g. GE's
   -2000 stored outside the field of view) clips to 0.
6. **MONOCHROME1.** The tag is read as the standard defines it. PS3.3 C.7.6.3.1.2: MONOCHROME1
   means "the minimum sample value is intended to be displayed as white after any VOI gray scale
   transformations"; the grayscale pipeline (PS3.4 N.2.1) applies the Modality LUT first, then
   the VOI LUT, and only the Presentation LUT (INVERSE for MONOCHROME1) turns values into
   display polarity. The Modality LUT output is therefore HU for MONOCHROME1 as for MONOCHROME2,
   and by default both are converted identically. A file that stores display-inverted values
   (its producer baked the inversion into the pixels and kept the tag) breaks the standard; it
   shows as air far above 0 HU (about +3000 HU for 12-bit data with intercept -1024). So every
   MONOCHROME1 slice is checked after conversion: when the median HU of its four corner squares
   (padding pixels, PixelPaddingValue, left out) is above
   :data:`covidct.batch.dicom.slices.MAX_CORNER_HU` (+500 HU; the corners of an axial CT are
   air or padding), the slice is not written and is skipped with the reason, naming the figure
   and the flag. ``invert_monochrome1=True`` (CLI ``--invert-monochrome1``) is the override for
   such broken files: it mirrors MONOCHROME1 stored values inside their BitsStored range
   (``min + max - stored``) before the Modality LUT; the same check then refuses a slice the
   flag made implausible (a correct file mirrored).
7. **Resampling** (``size_policy="resample"``): HU images are resampled to 512x512 with bilinear
   interpolation on a pixel-area grid (``scipy.ndimage.zoom(order=1, grid_mode=True,
   mode="nearest")``), each axis scaled on its own, so the whole field of view is kept and the
   pixel spacing becomes FOV / 512; then converted to uint16 as above. Bilinear weights are convex,
   so no value leaves the input's range.
8. **No DICOM tag reaches a TIFF** (:func:`covidct.batch.slices.write_slice` writes pixels and
   baseline tags only). ``Patient_details.csv`` rows carry the patient id, the label and each
   written SR folder's SliceThickness (the most common value of its slices; ``N/A`` when no
   slice has one; empty for SR folders not written); SEX, AGE and Date stay empty.
   ``batch.json`` records the source, series assignments, file mapping and skipped files; no
   tag value (patient name, birth date, UID, date) is copied into it. File paths relative to
   ``dicom_dir`` are recorded as given: name subject folders and files without identifying data
   before ingest (COVID-19-NY-SBU's file names carry TCIA's shifted study dates).
"""

from covidct.batch.dicom.ingest import (
    IngestReport,
    SeriesAssignment,
    format_ingest_summary,
    ingest_dicom,
    parse_label,
)
from covidct.batch.dicom.slices import (
    AXIAL_TOLERANCE_DEG,
    CORNER_FRACTION,
    MAX_CORNER_HU,
    SizePolicy,
    corner_hounsfield,
    dataset_to_negin,
    hounsfield_to_negin,
    invert_stored,
    is_axial,
    monochrome1_problem,
    resample_hounsfield,
    rescale_assumption,
    rescale_problem,
    slice_problems,
    stored_to_hounsfield,
)

__all__ = [
    "AXIAL_TOLERANCE_DEG",
    "CORNER_FRACTION",
    "IngestReport",
    "MAX_CORNER_HU",
    "SeriesAssignment",
    "SizePolicy",
    "corner_hounsfield",
    "dataset_to_negin",
    "format_ingest_summary",
    "hounsfield_to_negin",
    "ingest_dicom",
    "invert_stored",
    "is_axial",
    "monochrome1_problem",
    "parse_label",
    "rescale_assumption",
    "rescale_problem",
    "resample_hounsfield",
    "slice_problems",
    "stored_to_hounsfield",
]
