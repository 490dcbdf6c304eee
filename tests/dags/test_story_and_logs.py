"""``airflow dags test`` tells its story and leaves task logs the UI can open (issue 33 items 3
and 4), with real Airflow: a two-task DAG run by ``airflow dags test`` in a fresh
AIRFLOW_HOME with this repository's plugins (``plugins/covidct_story.py``).

* one story line when each task starts and one when it ends, with its time and figure, written
  to ``COVIDCT_STORY`` as the run goes;
* each task's log file where the UI's log reader looks (``base_log_folder`` and the
  file name template), holding what the task logged (the skip reason too), read back through
  Airflow's own ``TaskLogReader`` as the API server does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAG_ID = "story_probe"

DAG_SOURCE = """
import logging
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

log = logging.getLogger("story_probe")

@dag(dag_id="story_probe", schedule=None, catchup=False)
def story_probe():
    @task
    def validate():
        log.info("checking 960 slices of batch probe-batch")
        print("a line the task printed", flush=True)
        return {"batch_id": "probe-batch", "passed": True, "n_slices": 960}

    @task
    def make_folds(verdict):
        raise AirflowSkipException("dry run: no fold is made for this probe")

    make_folds(validate())

story_probe()
"""


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("story_home")
    dags = home / "dags"
    dags.mkdir()
    (dags / "story_probe.py").write_text(DAG_SOURCE)
    story = home / "story.txt"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "COVIDCT_STORY": str(story),
    }
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    done = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", DAG_ID], env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    reader = (
        "import json, sys\n"
        "from airflow.models import TaskInstance\n"
        "from airflow.utils.log.log_reader import TaskLogReader\n"
        "from airflow.utils.session import create_session\n"
        "out = {}\n"
        "with create_session() as session:\n"
        "    for ti in session.query(TaskInstance).filter_by(dag_id=sys.argv[1]):\n"
        "        logs, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {})\n"
        "        out[ti.task_id] = [getattr(m, 'event', str(m)) for m in logs]\n"
        "print(json.dumps(out, default=str))\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", reader, DAG_ID], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr[-3000:]
    return {
        "home": home,
        "story": story.read_text().splitlines(),
        "output": done.stdout + done.stderr,
        "ui_logs": json.loads(read.stdout.strip().splitlines()[-1]),
    }


def test_the_story_has_a_line_per_task_start_and_end(probe_run: dict) -> None:
    story = probe_run["story"]
    assert len(story) == 4, story
    assert story[0].endswith("> validate") and story[2].endswith("> make_folds")
    assert "validate: passed, 960 slices validated (" in story[1]
    assert "make_folds: SKIPPED (" in story[3]
    for line in story:  # "[  12s] ...": seconds into the run
        assert line.startswith("[") and line[1:7].strip().endswith("s")


def test_dags_test_task_logs_open_where_the_ui_reads_them(probe_run: dict) -> None:
    logs = sorted((probe_run["home"] / "logs").rglob("*.log"))
    names = {path.parent.name for path in logs if path.name == "attempt=1.log"}
    assert names == {"task_id=validate", "task_id=make_folds"}, logs
    ui = {task: "\n".join(lines) for task, lines in probe_run["ui_logs"].items()}
    assert "checking 960 slices of batch probe-batch" in ui["validate"]
    assert "a line the task printed" in ui["validate"]
    assert "Log file not found" not in ui["validate"]
    assert "dry run: no fold is made for this probe" in ui["make_folds"]
    assert "validate: passed, 960 slices validated" in ui["validate"]  # the story, in the log
    # what dags test prints is unchanged: the task's lines are still in its own output
    assert "a line the task printed" in probe_run["output"]
