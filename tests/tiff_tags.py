"""The TIFF tags a Negin-style slice may carry: baseline TIFF 6.0 only (no ImageDescription,
DateTime, Software or any private tag that could hold identifying text). Shared by the tests of
every writer of slices (``covidct.batch.slices.write_slice``, ``covidct ingest-dicom``)."""

BASELINE_TAGS = frozenset(
    {
        "ImageWidth",
        "ImageLength",
        "BitsPerSample",
        "Compression",
        "PhotometricInterpretation",
        "StripOffsets",
        "SamplesPerPixel",
        "RowsPerStrip",
        "StripByteCounts",
        "XResolution",
        "YResolution",
        "ResolutionUnit",
    }
)
