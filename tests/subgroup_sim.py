"""Simulated sequestered patients for the subgroup tests: a Patient_details table and predictions.

80 patients (``negin/p0`` ..): 40 COVID, 40 normal, sex alternating F/M within each label, ages
so that exactly 6 patients are 60 or older (a subgroup below the minimum size), two series per
patient (SR_2 at 5 mm, SR_3 at 1.5 mm), 5 slices per series. A model is described by how many
of a COVID patient's 10 slices it calls COVID (``hits``); its normal slices all score 0.1.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from covidct import schema

N_PER_LABEL = 40
SLICES_PER_SERIES = 5
SERIES = ("SR_2", "SR_3")
OLD = {0, 1, 2, 40, 41, 42}  # the patients aged 60+


def patients() -> list[dict[str, object]]:
    """One dict per patient: id, label, sex, age (years)."""
    rows = []
    for index in range(2 * N_PER_LABEL):
        covid = index < N_PER_LABEL
        age = 65 + index % 10 if index in OLD else 20 + (index * 7) % 40
        rows.append(
            {
                "id": f"p{index}",
                "key": schema.patient_key("negin", f"p{index}"),
                "covid": covid,
                "sex": "F" if index % 2 == 0 else "M",
                "age": age,
            }
        )
    return rows


def details() -> pd.DataFrame:
    """The patients as ``covidct.batch.contract.read_patient_details`` returns a
    Patient_details.csv."""
    return pd.DataFrame(
        [
            {
                "Patient ID": p["id"],
                "SEX": p["sex"],
                "AGE": f"{p['age']:03d}Y",
                "Date": "20200401",
                "COVID-19 Infection": "Positive" if p["covid"] else "Negative",
                "SR_2 Folder thickness(mm)": 5.0,
                "SR_3 Folder thickness(mm)": 1.5,
                "SR_4 Folder thickness(mm)": float("nan"),
            }
            for p in patients()
        ],
        columns=list(schema.PATIENT_DETAILS_COLUMNS),
    )


def predictions(hits: Callable[[dict[str, object]], int]) -> pd.DataFrame:
    """Slice predictions of a model that calls ``hits(patient)`` of a COVID patient's 10 slices
    COVID (interleaved over both series: slice i is a hit when i < hits, i counted across the
    series alternately)."""
    rows = []
    for patient in patients():
        k = hits(patient) if patient["covid"] else 0
        for position in range(SLICES_PER_SERIES * len(SERIES)):
            series = SERIES[position % 2]
            instance = position // 2
            p_covid = (0.9 if position < k else 0.2) if patient["covid"] else 0.1
            rows.append(
                {
                    "patient_id": patient["key"],
                    "y_true": "covid" if patient["covid"] else "normal",
                    "p_covid": p_covid,
                    "slice_id": f"{patient['id']}/{series}/IM{instance:05d}.tif",
                    "series": series,
                    "patient_threshold": 0.3,
                }
            )
    return pd.DataFrame(rows)
