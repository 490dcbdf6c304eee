#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local folders, CPU): called by `make demo`.
# Converts real TCIA DICOM and a synthetic batch into Negin-style batches, lands them with a
# deliberately faulty batch, then runs the covidct_retraining DAG end to end with `airflow dags test`.
set -euo pipefail
: "${SHARED:?set SHARED to the shared data folder}" "${COVIDCT_HOME:?}" "${AIRFLOW_HOME:?}"
RUN=${RUN:-uv run --frozen}
# `airflow dags test` (Airflow 3.3.2) crashes looking up deadline alerts at the end of its run;
# the scheduler path (make airflow-ui, compose) keeps the run-late alert.
export COVIDCT_DEADLINE_HOURS=${COVIDCT_DEADLINE_HOURS:-0}
INBOX=$COVIDCT_HOME/inbox
MODE=${1:-first}
# The demo is two weeks of the workflow, with the same run configuration each week:
#   week 1 (`make demo`): real TCIA DICOM, hospital A's synthetic batch and a faulty batch land;
#   week 2 (`make demo-rerun`): hospital B's batch lands (another scanner: softer kernel, thicker
#   slices, less noise); its drift against week 1 is measured, its patients are sequestered or
#   developed by the stable rule, the backbones retrain and the gate decides on evidence alone.
# The synthetic batches' truth (lesion masks, severity bands) is written beside them in the
# inbox (<batch>.truth/) and read only to score the confirmed models (COVIDCT_TRUTH_DIR).
export COVIDCT_TRUTH_DIR=${COVIDCT_TRUTH_DIR:-$INBOX}
CONF=${DEMO_CONF:-'{"profile": "cpu-smoke", "folds": 2, "backbones": ["resnet152", "resnet50"], "epochs": 1, "steps_per_epoch": 20}'}
# first, before any setup: the run configuration, checked as the DAG's first task checks it
# (one line naming the field, the bad value and the allowed values; exit 2)
$RUN covidct check-conf "$CONF" >/dev/null || exit 2
start=$(date +%s)
step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }
mkdir -p "$INBOX" "$AIRFLOW_HOME"
if [ ! -d "$SHARED/data/tcia" ]; then
  echo "demo: the shared data folder $SHARED/data/tcia is missing (set SHARED=...)" >&2; exit 2
fi

# Airflow's metadata DB and pools are made in the background while the batches are written
# (one core each); the DAG run waits for them below.
step "prepare Airflow in the background (SQLite metadata DB, pools gpu and promote)"
cat > "$AIRFLOW_HOME/pools.json" <<'JSON'
{"gpu": {"slots": 1, "description": "GPU slots: one per GPU worker"},
 "promote": {"slots": 1, "description": "serialises champion moves"}}
JSON
( $RUN airflow db migrate && $RUN airflow pools import "$AIRFLOW_HOME/pools.json" ) \
  > "$AIRFLOW_HOME/prepare.log" 2>&1 &
PREPARE=$!

if [ "$MODE" != rerun ]; then
step "convert real DICOM (TCIA) into Negin-style batches"
[ -d "$INBOX/tcia-covid19-ny-sbu" ] || $RUN covidct ingest-dicom "$SHARED/data/tcia/covid19-ny-sbu" \
  "$INBOX/tcia-covid19-ny-sbu" --label Positive --source covid19-ny-sbu --size-policy resample >/dev/null
[ -d "$INBOX/tcia-lung-pet-ct-dx" ] || $RUN covidct ingest-dicom "$SHARED/data/tcia/lung-pet-ct-dx" \
  "$INBOX/tcia-lung-pet-ct-dx" --label Negative --source lung-pet-ct-dx >/dev/null

step "write hospital A's synthetic batch (COVID-CTset roster, literature-based COVID-19 findings) and a faulty one"
[ -d "$INBOX/synth-hospital-a" ] || $RUN covidct synth "$INBOX/synth-hospital-a" --patients 240 --seed 0 \
  --max-slices 4 --source hospital-a --scanner negin >/dev/null
[ -d "$INBOX/faulty-batch" ] || $RUN python -m covidct.demo faulty-batch "$INBOX/faulty-batch"

step "land the batches in the data lake ($COVIDCT_HOME/lake/landing)"
for batch in tcia-covid19-ny-sbu tcia-lung-pet-ct-dx synth-hospital-a faulty-batch; do
  $RUN covidct land "$INBOX/$batch" --batch-id "$batch"
done

else
step "week 2: write hospital B's synthetic batch (another scanner) and land it"
[ -d "$INBOX/synth-hospital-b" ] || $RUN covidct synth "$INBOX/synth-hospital-b" --patients 240 --seed 1 \
  --max-slices 4 --source hospital-b --scanner soft-thick >/dev/null
$RUN covidct land "$INBOX/synth-hospital-b" --batch-id synth-hospital-b
fi

wait "$PREPARE" || { echo "demo: preparing Airflow failed; the last lines of $AIRFLOW_HOME/prepare.log:" >&2
  tail -n 20 "$AIRFLOW_HOME/prepare.log" >&2; exit 1; }

step "run the covidct_retraining DAG end to end: $CONF"
echo "    one line as each task starts (>) and ends, with its time and figure; the full log:"
echo "    $COVIDCT_HOME/dag-test.log (each task's log also opens in the Airflow UI)"
# the story (plugins/covidct_story.py) goes to this terminal through file descriptor 3
exec 3>&1
COVIDCT_STORY=/dev/fd/3 $RUN airflow dags test covidct_retraining -c "$CONF" \
  > "$COVIDCT_HOME/dag-test.log" 2>&1 || {
  echo "demo: the DAG run failed; the last lines of $COVIDCT_HOME/dag-test.log:" >&2
  tail -n 60 "$COVIDCT_HOME/dag-test.log" >&2; exit 1; }
grep -E "DagRun Finished|state=" "$COVIDCT_HOME/dag-test.log" | tail -n 1 || true

# KERAS_BACKEND (tensorflow, the default; jax; torch) reaches `airflow dags test` and every task
# from the environment of `make demo`; each training run tags its backend and whether any
# TensorFlow module was loaded in its process (covidct.training.log_backend)
step "Keras backend of this run's training: ${KERAS_BACKEND:-tensorflow}"
$RUN python - "$COVIDCT_HOME" "$start" <<'PY'
import os, sys
import mlflow
home, since = sys.argv[1], int(sys.argv[2]) * 1000
backend = os.environ.get("KERAS_BACKEND", "tensorflow")
mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"attributes.start_time >= {since}")
if "tags.keras_backend" in runs.columns:
    tagged = runs[runs["tags.keras_backend"].notna()]
else:
    tagged = runs.iloc[0:0]
backends = sorted(set(tagged["tags.keras_backend"])) if len(tagged) else []
with_tf = int((tagged["tags.tensorflow_imported"] == "true").sum()) if len(tagged) else 0
print(f"{len(tagged)} training runs on {backends}; TensorFlow loaded in {with_tf} of them")
if not len(tagged) or backends != [backend]:
    sys.exit(f"demo: expected training runs on {backend}, found {backends}")
if backend != "tensorflow" and with_tf:
    sys.exit(f"demo: a {backend} training process imported TensorFlow")
PY

step "summary"
$RUN covidct report
echo
echo "Full DAG log: $COVIDCT_HOME/dag-test.log"
if [ "$(cd "$COVIDCT_HOME" && pwd -P)" = "$(pwd -P)/.demo" ]; then
  # the covidct commands find ./.demo by themselves when COVIDCT_HOME is unset
  echo "From this folder: uv run covidct report;  uv run covidct registry history"
else
  echo "Report and history: COVIDCT_HOME=$COVIDCT_HOME uv run covidct report;" \
    "COVIDCT_HOME=$COVIDCT_HOME uv run covidct registry history"
fi
echo "UIs: make airflow-ui / make mlflow-ui"
echo "demo finished in $(( $(date +%s) - start )) s"
