"""Patient-level cross-validation folds that reproduce the COVID-CTset protocol, with no leakage.

Protocol (Rahimzadeh, Attar & Sakhaei, Biomed. Signal Process. Control 68:102588, 2021, section 3
and the fold tables of the COVID-CTset README; the seed's Tables 2-4 have the same shape):

* ``k`` folds (default 5). Every COVID patient sits in the test set of exactly one fold, so each
  fold tests about ``1/k`` of the COVID patients (balanced on COVID *images*, as published:
  446-465 test COVID images per fold for 14-23 patients).
* In fold ``i`` every COVID patient that is not tested forms the COVID training pool. Normal
  patients are drawn into the normal training pool until their images about equal the COVID pool
  images; every other normal patient goes to the test set, which is therefore unbalanced
  (published: about 460 COVID vs 7,850 normal images per fold).
* A validation set is split from the pool only (both classes, about ``val_fraction`` of each
  class's pool images), so validation never overlaps the test set. (The seed validated on its
  test COVID images; the published "training set" is our ``train`` + ``val``.)
* All slices of a patient share the patient's split: the unit of assignment is the patient key.

Algorithm (all orders come from a keyed hash of ``(seed, patient_key)``, so they do not depend
on the input row order, and adding patients does not reorder the others):

1. COVID patients in *jittered largest-first* order (images x 2**(u - 0.5), u uniform from the
   hash) each go to the test set of the fold with the fewest COVID test images (ties: fewest
   patients, then lowest fold). This is greedy list scheduling (Graham 1969): the spread of COVID
   test images across folds never exceeds the largest patient's image count, while the seed
   still changes the folds.
2. Normal patients in hash order are read as one ring; fold 1 takes patients from the start of
   the ring while taking the next one brings its pool closer to the COVID pool images
   (``pool + n/2 <= target``), and fold ``i + 1`` continues where fold ``i`` stopped. When there
   are at least as many normal images as the folds need (the published roster with its
   duplicate rows), every normal patient trains in at most one fold, as published; otherwise the
   ring wraps and some normal patients train in two folds. Each pool holds at least two normal
   patients and leaves at least one normal patient for the test set.
3. In each fold and class, pool patients in a per-fold hash order go to whichever of ``val``
   and ``train`` is further behind its share of the images (``val`` when
   ``val_images * (1 - val_fraction) < train_images * val_fraction``). The choice never looks
   at the patient's own size, so validation patients are not biased towards small ones, and
   ``val`` ends within one patient of ``val_fraction`` of the pool images. If either split
   would be empty, the smallest newly placed patient is moved to it.

Incremental rule (``previous``, a new weekly batch): a patient present in ``previous`` keeps its
split in every fold (its COVID test fold, its train / val / test role), whatever its label
and size. Only newcomers are placed, with the same steps, starting from the loads left by the
kept patients: COVID newcomers go to the folds with the fewest COVID test images, so the spread
stays at most max(previous spread, largest newcomer); normal newcomers fill each fold's normal
pool up to the COVID pool images and otherwise join the test set. Kept patients are never moved
to restore balance (that would move a patient between train and test of the same fold across
weeks); a fold left unbalanced by its kept patients is logged as a warning and is cured only by a
fresh assignment (``previous=None``). Patients of ``previous`` absent from the roster are dropped.

Patient identity on the real COVID-CTset roster (``all.csv``, checked 2026-11-30): filenames are
``<group>_<patient id>_<SR_n>_<IMnnnnn>.tif``. The group (``137covid``, ``157covid``, ``normal1``
... ``normal5``, ``normalcd1`` ... ``normalcd3``, ``cdnormal4``, ``cdunnormal``) is a part of the
published archive, not a patient namespace: the 377 patient ids are unique across the whole
dataset and match ``Patient_details.csv`` one to one (95 Positive, 282 Negative; no id appears
in both a covid and a normal group, and every group's class agrees with the patient's label).
But 78 normal patients (``patient168`` ... ``patient260``) are listed twice, under ``normal1``
and under ``normal2``/``normal4``/``normal5``, with the very same series and image numbers
(2,125 duplicate rows: 9,776 normal rows, 7,651 distinct normal slices). A CT series holds one
image per instance number, so these rows are the same images; keying patients by the group would
have split each of them into two "patients" that could land on both sides of a split. We key by
``<source>/<patient id>`` (:func:`covidct.schema.patient_key`, source ``negin``) and keep one row
per ``(patient, series, image)``. Distinct sources never merge: ``a/patient1`` and
``b/patient1`` are two patients.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from covidct.schema import (
    ClassName,
    Label,
    Split,
)

logger = logging.getLogger(__name__)

#: Columns of the slice table and of a fold manifest.
PATH_COLUMN = "path"
FILENAME_COLUMN = "filename"
PATIENT_KEY_COLUMN = "patient_key"
PATIENT_ID_COLUMN = "patient_id"
LABEL = "label"
SPLIT_COLUMN = "split"
FOLD_COLUMN = "fold"
#: Split name of the pooled ``train`` + ``val`` rows in :func:`protocol_table`
#: (the published "training set").
POOL_SPLIT = "train+val"
#: Number of hex characters of :func:`manifest_digest` (MLflow stores at most 36).
DIGEST_HEX_CHARS = 32

_SPLIT_CODES: tuple[Split, ...] = (Split.TRAIN, Split.VAL, Split.TEST)
_TRAIN, _VAL, _TEST = 0, 1, 2
_UNSET, _POOL = -1, -2
_U64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, eq=False)
class FoldAssignment:
    """Patient-level folds of one slice table.

    Attributes:
        slices: the input slice table (one row per slice), unchanged and not copied.
        patients: one row per patient, sorted by ``patient_key``: ``patient_key`` (str),
            ``label`` (``Positive``/``Negative``), ``n_images`` (int64, slices of the patient),
            ``test_fold`` (Int64, 1..k: the fold whose test set holds the COVID patient; <NA>
            for normal patients, who are tested in every fold where they do not train) and
            ``newcomer`` (bool: placed by this call, False if kept from ``previous``).
        splits: long table, one row per patient and fold: ``patient_key``, ``fold`` (int64,
            1..k), ``split`` (``train``/``val``/``test``).
        k, seed, val_fraction: the parameters used.
    """

    slices: pd.DataFrame
    patients: pd.DataFrame
    splits: pd.DataFrame
    k: int
    seed: int
    val_fraction: float
    _roles: np.ndarray  # int8 (k, n_patients), codes into _SPLIT_CODES
    _slice_codes: np.ndarray  # int64 (n_slices,), row of ``patients`` for each slice

    @property
    def folds(self) -> tuple[int, ...]:
        """Fold numbers, ``1..k`` (the published Fold1..Fold5)."""
        return tuple(range(1, self.k + 1))

    def fold_manifest(self, fold: int) -> pd.DataFrame:
        """Return the slice table of ``fold`` with ``split`` (str) and ``fold`` (int64) added.

        One row per input slice, all input columns kept. Raises ValueError for a fold outside
        ``1..k``.
        """
        if fold not in self.folds:
            raise ValueError(f"fold {fold!r} is not one of the folds {list(self.folds)}")
        names = np.array([s.value for s in _SPLIT_CODES], dtype=object)
        manifest = self.slices.copy()
        manifest[SPLIT_COLUMN] = names[self._roles[fold - 1, self._slice_codes]]
        manifest[FOLD_COLUMN] = np.int64(fold)
        return manifest


def assign_folds(
    slices: pd.DataFrame,
    *,
    k: int = 5,
    seed: int = 0,
    val_fraction: float = 0.2,
    previous: pd.DataFrame | None = None,
) -> FoldAssignment:
    """Assign every patient of ``slices`` to train / val / test in each of ``k`` folds.

    ``slices``: one row per slice with columns ``patient_key`` (``<source>/<patient_id>``),
    ``label`` (``Positive``/``Negative``, constant per patient) and ``path`` or ``filename``.
    ``previous``: an earlier assignment as a table with ``patient_key``, ``fold`` (1..k) and
    ``split`` (e.g. :attr:`FoldAssignment.splits`, or the concatenated fold manifests); its
    patients keep their splits (see the module docstring for the rule and the protocol).

    Raises ValueError naming the column, patient or fold when: a column is missing, a label is
    unknown or differs within a patient, ``k < 2``, ``val_fraction`` is not in (0, 1), there
    are fewer than ``k`` COVID or fewer than 3 normal patients, a split of a fold would lack a
    class, or ``previous`` is inconsistent (unknown split, fold outside 1..k, a patient without
    exactly one split per fold, a COVID patient not tested exactly once).
    """
    _check_parameters(k, val_fraction)
    patients, slice_codes = _patient_table(slices)
    roles = _previous_roles(previous, patients, k)
    newcomer = (roles == _UNSET).all(axis=0)
    is_covid = (patients[LABEL] == Label.POSITIVE.value).to_numpy()
    _check_counts(is_covid, k)
    n_images = patients["n_images"].to_numpy(np.int64)
    mixed = _key_hashes(patients[PATIENT_KEY_COLUMN], seed)
    _place_covid(roles, n_images, mixed, is_covid, newcomer)
    _fill_normal_pools(roles, n_images, is_covid, _hash_order(mixed, ~is_covid & newcomer))
    _assign_pool_roles(roles, n_images, is_covid, mixed, val_fraction)
    _check_assignment(roles, is_covid)
    _warn_unbalanced(roles, n_images, is_covid)
    patients = _finish_patients(patients, roles, is_covid, newcomer)
    return FoldAssignment(
        slices=slices,
        patients=patients,
        splits=_splits_table(patients[PATIENT_KEY_COLUMN], roles),
        k=k,
        seed=seed,
        val_fraction=val_fraction,
        _roles=roles,
        _slice_codes=slice_codes,
    )


def _check_parameters(k: int, val_fraction: float) -> None:
    if k < 2:
        raise ValueError(f"k must be at least 2 folds; got k={k}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")


def _patient_table(slices: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Group ``slices`` by patient key; return (patients sorted by key, patient row per slice)."""
    missing = [c for c in (PATIENT_KEY_COLUMN, LABEL) if c not in slices.columns]
    if not {PATH_COLUMN, FILENAME_COLUMN} & set(slices.columns):
        missing.append(f"{PATH_COLUMN} or {FILENAME_COLUMN}")
    if missing:
        raise ValueError(f"slice table lacks column(s) {missing}; has {list(slices.columns)}")
    if slices.empty:
        raise ValueError("slice table is empty: no patients to assign to folds")
    if slices[PATIENT_KEY_COLUMN].isna().any():
        rows = np.flatnonzero(slices[PATIENT_KEY_COLUMN].isna().to_numpy())[:5].tolist()
        raise ValueError(f"slice table has no patient_key in row(s) {rows}")
    codes, uniques = pd.factorize(slices[PATIENT_KEY_COLUMN].astype(str), sort=True)
    _check_namespaced(np.asarray(uniques, dtype=object))
    labels = slices[LABEL].astype(str).to_numpy()
    _check_labels(labels, codes, np.asarray(uniques, dtype=object))
    some_row = np.zeros(len(uniques), dtype=np.int64)
    some_row[codes] = np.arange(len(codes))  # labels are constant per patient (checked above)
    patients = pd.DataFrame(
        {
            PATIENT_KEY_COLUMN: np.asarray(uniques, dtype=object),
            LABEL: labels[some_row],
            "n_images": np.bincount(codes, minlength=len(uniques)).astype(np.int64),
        }
    )
    return patients, codes.astype(np.int64)


def _check_namespaced(keys: np.ndarray) -> None:
    """Raise ValueError unless every key is ``<source>/<patient_id>`` (schema.patient_key)."""
    source, _, patient = np.char.partition(keys.astype(str), "/").T
    bad = keys[(source == "") | (patient == "")]
    if len(bad):
        raise ValueError(f"patient key(s) {list(bad[:10])} are not <source>/<patient_id>")


def _check_labels(labels: np.ndarray, codes: np.ndarray, keys: np.ndarray) -> None:
    valid = [label.value for label in Label]
    unknown = sorted(set(pd.unique(labels)) - set(valid))
    if unknown:
        raise ValueError(f"unknown label(s) {unknown} in the slice table; valid labels: {valid}")
    per_patient = pd.DataFrame({"code": codes, "label": labels}).groupby("code")["label"]
    conflicted = per_patient.nunique()
    bad = conflicted[conflicted > 1].index.to_numpy()
    if len(bad):
        raise ValueError(f"patient(s) with both labels: {list(keys[bad][:10])}")


def _key_hashes(keys: pd.Series, seed: int) -> np.ndarray:
    """uint64 keyed hash of ``(seed, patient_key)``: stable under row order and additions."""
    seed_bytes = str(int(seed)).encode()
    digests = [
        hashlib.blake2b(key.encode(), digest_size=8, key=seed_bytes).digest() for key in keys
    ]
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


def _mix(hashes: np.ndarray, salt: int) -> np.ndarray:
    """SplitMix64 finaliser of ``hashes + salt * golden``: a fresh uint64 order per salt."""
    with np.errstate(over="ignore"):
        z = hashes + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _U64


def _hash_order(hashes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices where ``mask`` is true, ordered by hash."""
    idx = np.flatnonzero(mask)
    return idx[np.argsort(hashes[idx], kind="stable")]


def _previous_roles(previous: pd.DataFrame | None, patients: pd.DataFrame, k: int) -> np.ndarray:
    """Split codes (k, n_patients) kept from ``previous``; -1 where the patient is new."""
    roles = np.full((k, len(patients)), _UNSET, dtype=np.int8)
    if previous is None or previous.empty:
        return roles
    table = _clean_previous(previous, k)
    position = pd.Series(np.arange(len(patients)), index=patients[PATIENT_KEY_COLUMN])
    known = table[table[PATIENT_KEY_COLUMN].isin(position.index)]
    dropped = table.loc[~table[PATIENT_KEY_COLUMN].isin(position.index), PATIENT_KEY_COLUMN]
    if dropped.nunique():
        logger.info("%d patient(s) of the previous folds are gone", dropped.nunique())
    codes = known[SPLIT_COLUMN].map({s.value: i for i, s in enumerate(_SPLIT_CODES)})
    cols = position.loc[known[PATIENT_KEY_COLUMN]].to_numpy()
    roles[known[FOLD_COLUMN].to_numpy() - 1, cols] = codes.to_numpy(np.int8)
    _check_previous_complete(roles, patients)
    return roles


def _clean_previous(previous: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per (patient_key, fold) of ``previous``; raise on malformed tables."""
    need = [PATIENT_KEY_COLUMN, FOLD_COLUMN, SPLIT_COLUMN]
    missing = [c for c in need if c not in previous.columns]
    if missing:
        raise ValueError(f"previous assignment lacks column(s) {missing}")
    table = previous[need].drop_duplicates()
    table = table.astype({PATIENT_KEY_COLUMN: str, SPLIT_COLUMN: str})
    valid = [s.value for s in Split]
    bad_split = sorted(set(table[SPLIT_COLUMN]) - set(valid))
    if bad_split:
        raise ValueError(f"previous assignment has split(s) {bad_split}; valid: {valid}")
    folds = set(table[FOLD_COLUMN].astype(int))
    if not folds <= set(range(1, k + 1)):
        raise ValueError(f"previous assignment has folds {sorted(folds)}; k={k} allows 1..{k}")
    table[FOLD_COLUMN] = table[FOLD_COLUMN].astype(np.int64)
    twice = table.duplicated([PATIENT_KEY_COLUMN, FOLD_COLUMN], keep=False)
    if twice.any():
        who = sorted(set(table.loc[twice, PATIENT_KEY_COLUMN]))[:10]
        raise ValueError(f"previous assignment puts patient(s) {who} in two splits of one fold")
    return table


def _check_previous_complete(roles: np.ndarray, patients: pd.DataFrame) -> None:
    partial = (roles == _UNSET).any(axis=0) & (roles != _UNSET).any(axis=0)
    if partial.any():
        who = list(patients.loc[partial, PATIENT_KEY_COLUMN][:10])
        raise ValueError(f"previous assignment lacks some folds for patient(s) {who}")
    is_covid = (patients[LABEL] == Label.POSITIVE.value).to_numpy()
    known = (roles != _UNSET).all(axis=0)
    tests = (roles == _TEST).sum(axis=0)
    wrong = is_covid & known & (tests != 1)
    if wrong.any():
        who = list(patients.loc[wrong, PATIENT_KEY_COLUMN][:10])
        raise ValueError(
            f"previous assignment does not test COVID patient(s) {who} exactly once "
            "(relabelled since?); rebuild the folds without `previous`"
        )


def _check_counts(is_covid: np.ndarray, k: int) -> None:
    n_covid, n_normal = int(is_covid.sum()), int((~is_covid).sum())
    if n_covid < k:
        raise ValueError(f"{n_covid} COVID patient(s) cannot fill the test sets of {k} folds")
    if n_normal < 3:
        raise ValueError(f"{n_normal} normal patient(s); need 3 (train, val and test)")


def _place_covid(
    roles: np.ndarray,
    n_images: np.ndarray,
    hashes: np.ndarray,
    is_covid: np.ndarray,
    newcomer: np.ndarray,
) -> None:
    """Put each new COVID patient in the test set of the fold with the fewest COVID test images."""
    k = roles.shape[0]
    kept_tests = (roles == _TEST) & (is_covid & ~newcomer)
    load = [int(n_images[kept_tests[f]].sum()) for f in range(k)]
    count = [int(kept_tests[f].sum()) for f in range(k)]
    new = np.flatnonzero(is_covid & newcomer)
    unit = _mix(hashes[new], 1).astype(np.float64) / 2.0**64
    jittered = n_images[new] * np.exp2(unit - 0.5)
    order = new[np.lexsort((hashes[new], -jittered))]
    for patient in order:
        fold = min(range(k), key=lambda f: (load[f], count[f], f))
        roles[:, patient] = _POOL
        roles[fold, patient] = _TEST
        load[fold] += int(n_images[patient])
        count[fold] += 1


def _fill_normal_pools(
    roles: np.ndarray, n_images: np.ndarray, is_covid: np.ndarray, ring: np.ndarray
) -> None:
    """Draw new normal patients (``ring``, in hash order) into each fold's pool; rest to test."""
    cursor = 0
    n_normal = int((~is_covid).sum())
    for fold in range(roles.shape[0]):
        in_pool = np.isin(roles[fold], (_TRAIN, _VAL, _POOL))
        target = int(n_images[is_covid & in_pool].sum())
        current = int(n_images[~is_covid & in_pool].sum())
        size = int((~is_covid & in_pool).sum())
        taken = 0
        while taken < len(ring) and size < n_normal - 1:
            patient = ring[cursor % len(ring)]
            if size >= 2 and 2 * current + n_images[patient] > 2 * target:
                break
            roles[fold, patient] = _POOL
            current += int(n_images[patient])
            size, taken, cursor = size + 1, taken + 1, cursor + 1
        rest = ring[roles[fold, ring] == _UNSET]
        roles[fold, rest] = _TEST


def _assign_pool_roles(
    roles: np.ndarray,
    n_images: np.ndarray,
    is_covid: np.ndarray,
    hashes: np.ndarray,
    val_fraction: float,
) -> None:
    """Split each fold's newly pooled patients of each class into val and train."""
    for fold in range(roles.shape[0]):
        order = np.argsort(_mix(hashes, fold + 2), kind="stable")
        for in_class in (is_covid, ~is_covid):
            members = order[in_class[order] & np.isin(roles[fold, order], (_TRAIN, _VAL, _POOL))]
            _split_pool(roles[fold], members, n_images, val_fraction)


def _split_pool(
    role: np.ndarray, members: np.ndarray, n_images: np.ndarray, val_fraction: float
) -> None:
    """Assign the pending (``_POOL``) ``members`` of one fold and class, in order, in place."""
    pending = members[role[members] == _POOL]
    if not len(pending):
        return
    kept = members[role[members] != _POOL]
    val = int(n_images[kept][role[kept] == _VAL].sum())
    train = int(n_images[kept][role[kept] == _TRAIN].sum())
    for patient in pending:
        to_val = val * (1.0 - val_fraction) < train * val_fraction
        role[patient] = _VAL if to_val else _TRAIN
        if to_val:
            val += int(n_images[patient])
        else:
            train += int(n_images[patient])
    for empty, other in ((_VAL, _TRAIN), (_TRAIN, _VAL)):
        movable = pending[role[pending] == other]
        lacking = not (role[members] == empty).any() and (role[members] == other).sum() >= 2
        if lacking and len(movable):
            role[movable[np.argmin(n_images[movable])]] = empty


def _check_assignment(roles: np.ndarray, is_covid: np.ndarray) -> None:
    """Raise ValueError if any split of any fold lacks a class."""
    for fold in range(roles.shape[0]):
        for code, split in enumerate(_SPLIT_CODES):
            for in_class, name in ((is_covid, ClassName.COVID), (~is_covid, ClassName.NORMAL)):
                if not (in_class & (roles[fold] == code)).any():
                    raise ValueError(
                        f"fold {fold + 1}: no {name} patient in the {split} split "
                        f"({int(in_class.sum())} {name} patients in all); add patients or "
                        "rebuild the folds without `previous`"
                    )


def _warn_unbalanced(roles: np.ndarray, n_images: np.ndarray, is_covid: np.ndarray) -> None:
    for fold in range(roles.shape[0]):
        pool = roles[fold] != _TEST
        covid, normal = int(n_images[pool & is_covid].sum()), int(n_images[pool & ~is_covid].sum())
        if abs(covid - normal) > 0.1 * max(covid, 1):
            logger.warning(
                "fold %d: training pool holds %d COVID vs %d normal images", fold + 1, covid, normal
            )


def _finish_patients(
    patients: pd.DataFrame, roles: np.ndarray, is_covid: np.ndarray, newcomer: np.ndarray
) -> pd.DataFrame:
    test_fold = pd.array(np.argmax(roles == _TEST, axis=0) + 1, dtype="Int64")
    test_fold[~is_covid] = pd.NA
    return patients.assign(test_fold=test_fold, newcomer=newcomer)


def _splits_table(keys: pd.Series, roles: np.ndarray) -> pd.DataFrame:
    k, n = roles.shape
    names = np.array([s.value for s in _SPLIT_CODES], dtype=object)
    return pd.DataFrame(
        {
            PATIENT_KEY_COLUMN: np.tile(keys.to_numpy(dtype=object), k),
            FOLD_COLUMN: np.repeat(np.arange(1, k + 1, dtype=np.int64), n),
            SPLIT_COLUMN: names[roles.reshape(-1)],
        }
    )
