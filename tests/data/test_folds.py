"""Tests of covidct.data.folds: protocol, leakage invariants (hypothesis), lineage, real roster."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mlflow.tracking import MlflowClient

from covidct.data import fold_manifests, folds
from covidct.data.fold_manifests import (
    log_fold_dataset,
    manifest_digest,
    protocol_table,
    read_fold_manifests,
    write_fold_manifests,
)
from covidct.data.folds import assign_folds
from covidct.data.folds_cli import run_folds_command
from covidct.schema import Label, Split, patient_key

CTSET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "covid-ctset"
ROSTER_CSV = CTSET / "all.csv"
DETAILS_CSV = CTSET / "Patient_details.csv"
POS, NEG = Label.POSITIVE.value, Label.NEGATIVE.value


def make_slices(patients: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """One row per slice for (source, patient_id, label, n_images) patients."""
    rows = [
        {
            "path": f"{source}/{pid}/SR_2/IM{j:05d}.tif",
            "patient_key": patient_key(source, pid),
            "patient_id": pid,
            "source": source,
            "label": label,
        }
        for source, pid, label, n in patients
        for j in range(n)
    ]
    return pd.DataFrame(rows)


def simple_roster(covid_sizes: list[int], normal_sizes: list[int]) -> pd.DataFrame:
    covid = [("negin", f"c{i}", POS, n) for i, n in enumerate(covid_sizes)]
    normal = [("negin", f"n{i}", NEG, n) for i, n in enumerate(normal_sizes)]
    return make_slices(covid + normal)


def split_matrix(assignment: folds.FoldAssignment) -> pd.DataFrame:
    """patient_key x fold table of split names."""
    return assignment.splits.pivot(index="patient_key", columns="fold", values="split")


def pool_images(assignment: folds.FoldAssignment, fold: int, label: str) -> int:
    table = assignment.splits.merge(assignment.patients, on="patient_key")
    chosen = (table["fold"] == fold) & (table["label"] == label) & (table["split"] != "test")
    return int(table.loc[chosen, "n_images"].sum())


# --------------------------------------------------------------------------- hypothesis


@st.composite
def rosters(draw: st.DrawFn) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """A roster whose patient ids collide across sources, with k and the true image counts."""
    k = draw(st.integers(3, 6))
    entry = st.tuples(
        st.sampled_from(["negin", "tcia", "site-b"]),
        st.integers(1, 12),
        st.booleans(),
        st.integers(1, 60),
    )
    entries = draw(st.lists(entry, min_size=k + 3, max_size=60, unique_by=lambda e: e[:2]))
    n_covid = sum(e[2] for e in entries)
    if n_covid < k or len(entries) - n_covid < 3:  # first k COVID, last 3 normal (len >= k + 3)
        last = len(entries) - 3
        entries = [(s, i, (c or j < k) and j < last, n) for j, (s, i, c, n) in enumerate(entries)]
    patients = [(s, f"patient{i}", POS if c else NEG, n) for s, i, c, n in entries]
    truth = {patient_key(s, p): n for s, p, _, n in patients}
    return make_slices(patients), k, truth


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rosters(), st.integers(0, 2**31))
def test_no_patient_in_two_splits_of_a_fold(roster, seed):
    slices, k, _ = roster
    assignment = assign_folds(slices, k=k, seed=seed)
    for fold in assignment.folds:
        manifest = assignment.fold_manifest(fold)
        assert len(manifest) == len(slices)
        assert manifest.groupby("patient_key")["split"].nunique().max() == 1
    assert not assignment.splits.duplicated(["patient_key", "fold"]).any()
    assert len(assignment.splits) == k * slices["patient_key"].nunique()


@PROPERTY
@given(rosters(), st.integers(0, 2**31))
def test_every_covid_patient_tested_exactly_once(roster, seed):
    slices, k, _ = roster
    assignment = assign_folds(slices, k=k, seed=seed)
    table = assignment.splits.merge(assignment.patients, on="patient_key")
    covid_tests = table[(table["label"] == POS) & (table["split"] == "test")]
    counts = covid_tests.groupby("patient_key")["fold"].agg(["size", "first"])
    covid = assignment.patients[assignment.patients["label"] == POS].set_index("patient_key")
    assert set(counts.index) == set(covid.index)
    assert (counts["size"] == 1).all()
    assert (counts["first"] == covid.loc[counts.index, "test_fold"]).all()


@PROPERTY
@given(rosters(), st.integers(0, 2**31))
def test_both_classes_in_every_split(roster, seed):
    slices, k, _ = roster
    table = protocol_table(assign_folds(slices, k=k, seed=seed))
    assert len(table) == 4 * k
    assert (table["covid_patients"] > 0).all()
    assert (table["normal_patients"] > 0).all()


@PROPERTY
@given(rosters(), st.integers(0, 2**31), st.randoms(use_true_random=False))
def test_same_seed_same_folds_whatever_the_row_order(roster, seed, rng):
    slices, k, _ = roster
    shuffled = slices.sample(frac=1.0, random_state=rng.randrange(2**32)).reset_index(drop=True)
    first, second = assign_folds(slices, k=k, seed=seed), assign_folds(shuffled, k=k, seed=seed)
    pd.testing.assert_frame_equal(split_matrix(first), split_matrix(second))
    for fold in first.folds:
        assert manifest_digest(first.fold_manifest(fold)) == manifest_digest(
            second.fold_manifest(fold)
        )


@PROPERTY
@given(rosters(), st.integers(0, 2**31))
def test_patients_of_different_sources_never_merged(roster, seed):
    slices, k, truth = roster
    patients = assign_folds(slices, k=k, seed=seed).patients
    assert dict(zip(patients["patient_key"], patients["n_images"], strict=True)) == truth


@PROPERTY
@given(rosters(), st.integers(0, 2**31))
def test_folds_are_balanced(roster, seed):
    """COVID test images spread <= largest COVID patient; pools about equal; val ~ fraction."""
    slices, k, _ = roster
    assignment = assign_folds(slices, k=k, seed=seed)
    patients = assignment.patients
    covid = patients[patients["label"] == POS]
    normal = patients[patients["label"] == NEG]
    test_images = covid.groupby("test_fold")["n_images"].sum()
    assert test_images.max() - test_images.min() <= covid["n_images"].max()
    table = protocol_table(assignment).set_index(["fold", "split"])
    for fold in assignment.folds:
        pool = table.loc[(fold, "train+val")]
        gap = abs(int(pool["normal_images"]) - int(pool["covid_images"]))
        forced = pool["normal_patients"] in (2, len(normal) - 1)
        assert gap <= normal["n_images"].max() / 2 or forced
        for cls, biggest in (
            ("covid", covid["n_images"].max()),
            ("normal", normal["n_images"].max()),
        ):
            val = table.loc[(fold, "val"), f"{cls}_images"]
            assert abs(val - assignment.val_fraction * pool[f"{cls}_images"]) <= biggest


@PROPERTY
@given(rosters(), st.integers(0, 2**31), st.data())
def test_weekly_newcomers_keep_old_folds_and_balance(roster, seed, data):
    slices, k, _ = roster
    keys = sorted(slices["patient_key"].unique())
    old_keys = set(data.draw(st.lists(st.sampled_from(keys), unique=True), label="old"))
    old = slices[slices["patient_key"].isin(old_keys)]
    labels = old.groupby("patient_key")["label"].first()
    if (labels == POS).sum() < k or (labels == NEG).sum() < 3:
        old_keys, old = set(keys), slices
    before = assign_folds(old, k=k, seed=seed)
    after = assign_folds(slices, k=k, seed=seed, previous=before.splits)
    kept = split_matrix(after).loc[sorted(old_keys)]
    pd.testing.assert_frame_equal(kept, split_matrix(before))
    newcomers = after.patients[after.patients["newcomer"]]
    assert set(newcomers["patient_key"]) == set(keys) - old_keys
    spread_before = _covid_test_spread(before)
    biggest_new = newcomers.loc[newcomers["label"] == POS, "n_images"].max()
    assert _covid_test_spread(after) <= max(
        spread_before, 0 if pd.isna(biggest_new) else biggest_new
    )


def _covid_test_spread(assignment: folds.FoldAssignment) -> int:
    covid = assignment.patients[assignment.patients["label"] == POS]
    loads = covid.groupby("test_fold")["n_images"].sum().reindex(assignment.folds, fill_value=0)
    return int(loads.max() - loads.min())


# --------------------------------------------------------------------------- hand-computed


@pytest.mark.parametrize(
    ("k", "covid_sizes", "normal_sizes", "covid_test", "normal_pool", "normal_test_patients"),
    [
        # 3 equal COVID patients, one per fold; pool 20 COVID images -> four 5-image normals.
        (3, [10, 10, 10], [5] * 10, [10, 10, 10], [20, 20, 20], [6, 6, 6]),
        # six 8s over 3 folds: 16 tested, pool 32 -> eight 4-image normals (ring wraps).
        (3, [8] * 6, [4] * 20, [16, 16, 16], [32, 32, 32], [12, 12, 12]),
        # 30 -> fold 1, three 10s -> fold 2 (30), last 10 ties 30/30 -> fewer patients: fold 1.
        # Pools 30 and 40; 7-image normals while pool + 3.5 <= target: 28 and 42 images.
        (2, [30, 10, 10, 10, 10], [7] * 12, [40, 30], [28, 42], [8, 6]),
    ],
)
def test_protocol_on_hand_computed_rosters(
    k, covid_sizes, normal_sizes, covid_test, normal_pool, normal_test_patients
):
    table = protocol_table(assign_folds(simple_roster(covid_sizes, normal_sizes), k=k))
    tests = table[table["split"] == "test"]
    pools = table[table["split"] == "train+val"]
    assert tests["covid_images"].tolist() == covid_test
    assert pools["covid_images"].tolist() == [sum(covid_sizes) - t for t in covid_test]
    assert pools["normal_images"].tolist() == normal_pool
    assert tests["normal_patients"].tolist() == normal_test_patients
    totals = tests["normal_images"].to_numpy() + pools["normal_images"].to_numpy()
    assert (totals == sum(normal_sizes)).all()


def test_disjoint_training_normals_when_there_are_enough():
    """With normal images >= what the folds need, each normal patient trains in <= 1 fold."""
    assignment = assign_folds(simple_roster([10] * 5, [5] * 50), k=5, seed=3)
    table = assignment.splits.merge(assignment.patients, on="patient_key")
    trained = table[(table["label"] == NEG) & (table["split"] != "test")]
    assert trained.groupby("patient_key").size().max() == 1
    assert len(trained) == 5 * 8  # 40 pool images per fold / 5 images per patient


def test_seed_changes_the_folds():
    slices = simple_roster(list(range(1, 31)), [20] * 40)
    digests = {manifest_digest(assign_folds(slices, seed=s).splits) for s in range(4)}
    assert len(digests) == 4


def test_newcomers_fill_a_grown_pool_and_old_patients_stay():
    old = simple_roster([10] * 5, [10] * 12)
    new = make_slices(
        [("negin", f"c-new{i}", POS, 10) for i in range(5)]
        + [("negin", f"n-new{i}", NEG, 10) for i in range(20)]
    )
    before = assign_folds(old, k=5)
    after = assign_folds(pd.concat([old, new]), k=5, previous=before.splits)
    loads = after.patients.groupby("test_fold")["n_images"].sum()
    assert loads.tolist() == [20] * 5  # one old + one new COVID patient per fold
    for fold in after.folds:  # pool: 80 COVID images; old normals 40 -> four newcomers added
        assert pool_images(after, fold, NEG) == 80


def test_previous_from_written_manifests(tmp_path):
    slices = simple_roster([12, 9, 30, 4, 8, 15], [11, 30, 22, 7, 19, 5, 28])
    before = assign_folds(slices, k=3, seed=7)
    write_fold_manifests(before, tmp_path)
    same_ids_other_source = make_slices([("site-b", f"n{i}", NEG, 3) for i in range(3)])
    grown = pd.concat([slices, same_ids_other_source])
    after = assign_folds(grown, k=3, seed=7, previous=read_fold_manifests(tmp_path))
    kept = split_matrix(after).loc[split_matrix(before).index]
    pd.testing.assert_frame_equal(kept, split_matrix(before))


# --------------------------------------------------------------------------- errors


def _two_label_patient() -> pd.DataFrame:
    slices = simple_roster([5] * 5, [5] * 4)
    slices.loc[0, "label"] = NEG
    return slices


@pytest.mark.parametrize(
    ("slices", "kwargs", "message"),
    [
        (simple_roster([5] * 5, [5] * 4).drop(columns="label"), {}, "lacks column"),
        (simple_roster([5] * 5, [5] * 4).drop(columns="path"), {}, "path or filename"),
        (simple_roster([5] * 5, [5] * 4).replace({POS: "covid"}), {}, "unknown label"),
        (_two_label_patient(), {}, "both labels: \\['negin/c0'\\]"),
        (simple_roster([5] * 5, [5] * 4), {"k": 1}, "at least 2"),
        (simple_roster([5] * 5, [5] * 4), {"val_fraction": 0.0}, "val_fraction"),
        (simple_roster([5] * 5, [5] * 4), {"val_fraction": 1.0}, "val_fraction"),
        (simple_roster([5] * 4, [5] * 4), {"k": 5}, "4 COVID patient"),
        (simple_roster([5] * 5, [5] * 2), {}, "2 normal patient"),
        (simple_roster([30, 10, 10, 10], [5] * 6), {"k": 2}, "fold 2: no covid patient in the"),
        (simple_roster([], [5] * 4).iloc[:0], {}, "empty"),
        (simple_roster([5] * 5, [5] * 4).replace({"negin/c1": "c1"}), {}, "\\['c1'\\] are not"),
        (simple_roster([5] * 5, [5] * 4).replace({"negin/c1": "negin/"}), {}, "not <source>/"),
        (simple_roster([5] * 5, [5] * 4).replace({"negin/c1": None}), {}, "row\\(s\\) \\[5, 6"),
    ],
)
def test_assign_folds_rejects_bad_input(slices, kwargs, message):
    with pytest.raises(ValueError, match=message):
        assign_folds(slices, **kwargs)


def _previous(edit) -> pd.DataFrame:
    splits = assign_folds(simple_roster([5] * 5, [5] * 6), k=5).splits.copy()
    return edit(splits)


def _test_twice(splits: pd.DataFrame) -> pd.DataFrame:
    splits.loc[(splits["patient_key"] == "negin/c0"), "split"] = "test"
    return splits


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        (_previous(lambda s: s.drop(columns="split")), "lacks column"),
        (_previous(lambda s: s.replace({"val": "validation"})), "split\\(s\\) \\['validation'\\]"),
        (_previous(lambda s: s.assign(fold=s["fold"] + 1)), "k=5 allows 1..5"),
        (_previous(lambda s: pd.concat([s, s.assign(split="test")])), "two splits of one fold"),
        (_previous(lambda s: s[s["fold"] != 2]), "lacks some folds"),
        (_previous(_test_twice), "exactly once"),
    ],
)
def test_assign_folds_rejects_bad_previous(previous, message):
    with pytest.raises(ValueError, match=message):
        assign_folds(simple_roster([5] * 5, [5] * 6), k=5, previous=previous)


@pytest.mark.parametrize("fold", [0, 6, -1])
def test_fold_manifest_rejects_unknown_fold(fold):
    assignment = assign_folds(simple_roster([5] * 5, [5] * 6), k=5)
    with pytest.raises(ValueError, match=r"not one of the folds \[1, 2, 3, 4, 5\]"):
        assignment.fold_manifest(fold)


# --------------------------------------------------------------------------- digest & files


def _manifest() -> pd.DataFrame:
    return assign_folds(simple_roster([7, 3, 9, 4], [6, 8, 2, 5, 9]), k=3).fold_manifest(1)


@pytest.mark.parametrize(
    ("edit", "same"),
    [
        (lambda m: m.iloc[::-1], True),
        (lambda m: m[list(reversed(m.columns))], True),
        (lambda m: m.sample(frac=1.0, random_state=1).reset_index(drop=True), True),
        (lambda m: m.assign(split=m["split"].replace({"val": "train"})), False),
        (lambda m: pd.concat([m, m.iloc[:1]]), False),
        (lambda m: m.iloc[1:], False),
        (lambda m: m.rename(columns={"fold": "fold_number"}), False),
    ],
)
def test_manifest_digest(edit, same):
    manifest = _manifest()
    assert (manifest_digest(edit(manifest)) == manifest_digest(manifest)) is same
    assert re.fullmatch(r"[0-9a-f]{32}", manifest_digest(manifest))


def test_written_manifests_keep_their_digest_and_are_byte_stable(tmp_path):
    slices = simple_roster([7, 3, 9, 4], [6, 8, 2, 5, 9])
    assignment = assign_folds(slices, k=3)
    paths = write_fold_manifests(assignment, tmp_path / "a", parquet=True)
    assert [p.name for p in paths] == [
        f"fold-{i}.{e}" for i in (1, 2, 3) for e in ("csv", "parquet")
    ]
    for fold, path in zip(assignment.folds, paths[::2], strict=True):
        written = pd.read_csv(path)
        assert list(written.columns[:5]) == [
            "filename",
            "patient_id",
            "patient_key",
            "label",
            "split",
        ]
        in_memory = fold_manifests._manifest_for_file(assignment, fold)
        assert manifest_digest(written) == manifest_digest(in_memory)
        assert manifest_digest(pd.read_parquet(path.with_suffix(".parquet"))) == manifest_digest(
            in_memory
        )
    shuffled = assign_folds(slices.sample(frac=1.0, random_state=5), k=3)
    again = write_fold_manifests(shuffled, tmp_path / "b")
    assert [p.read_bytes() for p in paths[::2]] == [p.read_bytes() for p in again]


# --------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_sqlite(tmp_path_factory):
    """A real MLflow SQLite backend with its artifact folder, both in a temporary folder."""
    root = tmp_path_factory.mktemp("mlflow")
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("sqlite:///" + str(root / "mlflow.db"))
    yield mlflow.create_experiment("folds", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_tracking_uri(previous_uri)


@pytest.mark.parametrize(
    ("context", "source"),
    [("training", None), ("validation", "s3://lake/folds/v1/fold-1.parquet")],
)
def test_log_fold_dataset_links_the_manifest_to_the_run(mlflow_sqlite, context, source):
    manifest = _manifest()
    with mlflow.start_run(experiment_id=mlflow_sqlite) as run:
        digest = log_fold_dataset(
            manifest, name=f"fold-1-{context}", context=context, source=source
        )
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == digest == manifest_digest(manifest)
    assert inputs[0].dataset.name == f"fold-1-{context}"
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == context
    assert f'"num_rows": {len(manifest)}' in inputs[0].dataset.profile
    if source is not None:
        assert source in inputs[0].dataset.source


def test_log_fold_dataset_needs_an_active_run():
    assert mlflow.active_run() is None
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        log_fold_dataset(_manifest(), name="fold-1")


# --------------------------------------------------------------------------- real roster


def _roster_rows() -> list[dict[str, str]]:
    with ROSTER_CSV.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def real_folds(tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("folds")
    return run_folds_command(ROSTER_CSV, DETAILS_CSV, 5, 0, out), out


def test_real_roster_manifests_have_no_leakage(real_folds):
    text, out = real_folds
    details = pd.read_csv(DETAILS_CSV)
    positive = set(details.loc[details["COVID-19 Infection"] == POS, "Patient ID"])
    distinct = {re.sub(r"^[^_]+_", "", row["filename"]) for row in _roster_rows()}
    tested: list[str] = []
    for fold in range(1, 6):
        manifest = pd.read_csv(out / f"fold-{fold}.csv")
        assert {"filename", "patient_id", "label", "split"} <= set(manifest.columns)
        assert len(manifest) == len(distinct)
        assert manifest.groupby("patient_id")["split"].nunique().max() == 1
        assert set(manifest["split"]) == {s.value for s in Split}
        tests = manifest[(manifest["split"] == "test") & (manifest["label"] == POS)]
        tested += sorted(set(tests["patient_id"]))
    assert sorted(tested) == sorted(positive)
    assert "train+val" in text and "digest=" in text


def test_real_roster_patients_are_unique_ids_not_groups(real_folds):
    """patient168 is listed under normal1 and normal5 with the same slices: one patient."""
    _, out = real_folds
    groups: dict[str, set[str]] = {}
    for row in _roster_rows():
        group, pid = row["filename"].split("_")[:2]
        groups.setdefault(pid, set()).add(group)
    listed_twice = {pid for pid, seen in groups.items() if len(seen) > 1}
    manifest = pd.read_csv(out / "fold-1.csv")
    assert manifest["patient_id"].nunique() == len(groups)
    assert not manifest.duplicated(["patient_id", "series", "image"]).any()
    assert listed_twice and listed_twice <= set(manifest["patient_id"])


def test_real_roster_balance_matches_the_protocol(real_folds):
    _, out = real_folds
    covid_total = sum(row["class"] == "covid" for row in _roster_rows())
    for fold in range(1, 6):
        manifest = pd.read_csv(out / f"fold-{fold}.csv")
        pool = manifest[manifest["split"] != "test"]
        covid_pool = int((pool["label"] == POS).sum())
        assert abs(covid_pool - covid_total * 4 / 5) <= 0.02 * covid_total
        assert abs(int((pool["label"] == NEG).sum()) - covid_pool) <= 0.02 * covid_pool


@pytest.mark.parametrize(
    ("roster", "details", "message"),
    [
        ("filename,class\nbad-name.tif,covid\n", "", "line 2: bad-name.tif"),
        ("filename,class\n137covid_patient9_SR_2_IM00001.tif,covid\n", "", "patient9'\\] not in"),
        ("filename,class\nnormal1_patient1_SR_2_IM00001.tif,normal\n", "", "class contradicts"),
        (
            "filename,class\n137covid_patient1_SR_2_IM00001.tif,covid\n",
            "patient1,F,1,2,Positive,1,1,1\n",
            "listed twice",
        ),
    ],
)
def test_roster_parser_names_the_bad_rows(tmp_path, roster, details, message):
    header = DETAILS_CSV.read_text().splitlines()[0]
    (tmp_path / "all.csv").write_text(roster)
    (tmp_path / "details.csv").write_text(
        f"{header}\npatient1,F,053Y,20200407,Positive,4,6,1.5\n{details}"
    )
    with pytest.raises(ValueError, match=message):
        run_folds_command(tmp_path / "all.csv", tmp_path / "details.csv", 5, 0, tmp_path / "out")


def test_assignment_is_fast_enough_for_a_weekly_roster():
    """Sanity bound only; benchmarks/folds_speed.py measures 64,000 slices."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 60, size=300)
    slices = simple_roster(sizes[:80].tolist(), sizes[80:].tolist())
    assignment = assign_folds(slices)
    assert sum(len(assignment.fold_manifest(f)) for f in assignment.folds) == 5 * len(slices)
