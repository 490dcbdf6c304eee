"""The run's story and the task log files of ``airflow dags test`` (issue 33 items 3 and 4).

An Airflow listener (Task SDK hooks ``on_task_instance_running`` / ``_success`` / ``_failed`` /
``_skipped``, called in the process that runs the task):

* **The story.** One line when a task starts and one when it ends, with its elapsed time and
  the one figure of its result (:func:`covidct.pipeline.story.figure`: slices validated, steps
  trained with the final loss, ROC AUC, the gate's verdict). Each line goes to the task's log
  and, when ``COVIDCT_STORY`` names a file (``infra/demo.sh`` gives its terminal,
  ``/dev/fd/3``), is appended there as it happens.
* **Task logs of ``airflow dags test``.** ``dags test`` runs each task in its own process with
  no supervisor, so its log goes to the command's output only and the UI answers "Log file not
  found on worker". While such a task runs (an in-process supervisor, ``dag.test()``), what the
  process writes to its standard output and error is also copied, byte for byte, to the file
  the UI reads: ``[logging] base_log_folder`` / ``log_filename_template`` (``dag_id=.../
  run_id=.../task_id=.../attempt=1.log``). Runs of the scheduler (``make airflow-ui``, the
  compose stack) already write that file and are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger("covidct.story")

#: file the story lines are appended to as they happen (unset: the task logs only)
STORY_ENV = "COVIDCT_STORY"


def _in_process() -> bool:
    """Whether this task runs under ``dag.test()``'s in-process supervisor (``dags test``)."""
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "InProcessSupervisorComms"


def log_path(task_instance: Any) -> Path:
    """Where the UI looks for this attempt's log: the configured folder and file name template
    rendered for ``task_instance`` (dag_id, run_id, task_id, map_index, try_number)."""
    import jinja2
    from airflow.configuration import conf

    folder = Path(conf.get("logging", "base_log_folder")).expanduser()
    template = conf.get("logging", "log_filename_template")
    name = jinja2.Template(template).render(ti=task_instance, try_number=task_instance.try_number)
    return folder / name


class FdTee:
    """Copy what is written to file descriptors 1 and 2 to ``path`` as well, until :meth:`close`
    (each descriptor goes through a pipe that a thread drains into both places)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sink = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lock = threading.Lock()
        self.saved: dict[int, int] = {}
        self.threads: list[threading.Thread] = []
        _flush()
        for fd in (1, 2):
            self.saved[fd] = os.dup(fd)
            reader, writer = os.pipe()
            os.dup2(writer, fd)
            os.close(writer)
            pump = threading.Thread(target=self._pump, args=(reader, self.saved[fd]), daemon=True)
            pump.start()
            self.threads.append(pump)

    def _pump(self, reader: int, out: int) -> None:
        while chunk := os.read(reader, 65536):
            os.write(out, chunk)
            with self.lock:
                os.write(self.sink, chunk)
        os.close(reader)

    def close(self) -> None:
        """Put descriptors 1 and 2 back and let the pumps drain (5 s at most: a child process
        the task left running may hold a pipe open)."""
        _flush()
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
        for pump in self.threads:
            pump.join(timeout=5)
        for saved in self.saved.values():
            os.close(saved)
        os.close(self.sink)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()


class StoryListener:
    """The listener (module doc). One task at a time runs in a process, so one state each."""

    def __init__(self) -> None:
        self.run_started: dict[str, float] = {}
        self.task_started = 0.0
        self.tee: FdTee | None = None

    def _say(self, line: str) -> None:
        log.info("%s", line)
        target = os.environ.get(STORY_ENV)
        if target:
            try:
                with open(target, "a", encoding="utf-8") as sink:
                    sink.write(line + "\n")
            except OSError as error:
                log.warning("story line not written to %s: %s", target, error)

    def _label(self, task_instance: Any) -> str:
        from covidct.pipeline.story import describe

        return describe(
            task_instance.task_id,
            {
                "rendered_map_index": getattr(task_instance, "rendered_map_index", None),
                "map_index": getattr(task_instance, "map_index", -1),
            },
        )

    def _elapsed(self, task_instance: Any) -> float:
        first = self.run_started.setdefault(task_instance.run_id, time.monotonic())
        return time.monotonic() - first

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """A task started: open its log file under ``dags test``; say so."""
        from covidct.pipeline.story import start_line

        if self.tee is None and _in_process():
            try:
                self.tee = FdTee(log_path(task_instance))
            except OSError as error:
                log.warning("no task log file for the UI: %s", error)
        self.task_started = time.monotonic()
        self._say(start_line(self._elapsed(task_instance), self._label(task_instance)))

    def _end(self, task_instance: Any, state: str, detail: str) -> None:
        from covidct.pipeline.story import end_line

        took = time.monotonic() - self.task_started
        elapsed = self._elapsed(task_instance)
        self._say(end_line(elapsed, self._label(task_instance), state, took, detail))
        if self.tee is not None:
            tee, self.tee = self.tee, None
            tee.close()

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """A task succeeded: its figure, read from its XCom return value."""
        from covidct.pipeline.story import figure

        try:
            result = task_instance.xcom_pull(
                task_ids=task_instance.task_id, map_indexes=task_instance.map_index
            )
        except Exception as error:  # noqa: BLE001 - a story line must never fail the task
            log.debug("no return value for the story: %s", error)
            result = None
        self._end(task_instance, "success", figure(task_instance.task_id, result))

    @hookimpl
    def on_task_instance_failed(
        self, previous_state: Any, task_instance: Any, error: BaseException | str | None
    ) -> None:
        """A task failed (or will be retried): the first line of its error."""
        self._end(task_instance, "failed", str(error or "").strip().splitlines()[0][:200]
                  if error else "")  # fmt: skip

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """A task skipped itself (the reason is in its log, logged by the task)."""
        self._end(task_instance, "skipped", "")


class CovidctStoryPlugin(AirflowPlugin):
    """Registers :class:`StoryListener`."""

    name = "covidct_story"
    listeners = [StoryListener()]
