"""Every server or worker a test starts, recorded so that nothing outlives the test run.

Servers run in their own sessions (``start_new_session=True``), so the group signals of a
terminal's Ctrl-C or of ``timeout -s TERM make test`` do not reach them: the pytest process has
to stop them. This module records each started process group (:func:`register`) and stops
them all (:func:`stop_everything`) on every way out of a run:

* normal exit and failures: the fixtures' own teardown stops their servers; the guard below
  is the safety net;
* SIGTERM or SIGINT of the pytest process (``make test`` forwards both through ``uv``): the
  handler signals every recorded group at once and raises ``KeyboardInterrupt`` so fixture
  teardown runs; whatever is left after :data:`GRACE_S` is killed;
* anything else that ends pytest without teardown (``os._exit`` from pytest-timeout's thread
  method, SIGKILL, a main thread stuck in C code): the **guard**, a small process in its own
  session started by :func:`install`, holds a pipe from pytest; when the pipe closes, or
  :data:`GRACE_S` after pytest was signalled, it kills every recorded group.

Every child also inherits ``COVIDCT_TEST_RUN`` (:data:`MARKER_ENV`): a per-run marker, kept
when already set (``.ci/run`` sets it for the whole ``make test``), that finds leftovers
through ``/proc/<pid>/environ`` even when they left their group (Airflow's task runners call
``setpgid``); redis-server and PostgreSQL's backends overwrite their environ with their process
titles, so the groups and process trees are tracked too. :func:`marked_processes` lists them.
``python3 tests/procgroups.py --run -- make test`` (what ``.ci/run`` does) runs the suite as a
child subreaper and fails when any process it started is still alive 20 s after it ended.

Only the standard library is used (the guard and ``.ci/run`` run it with any Python 3).
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Environment variable carrying the run marker into every child process.
MARKER_ENV = "COVIDCT_TEST_RUN"
#: Seconds between SIGTERM to the recorded groups and SIGKILL, after a signal or at exit.
GRACE_S = 8.0

_lock = threading.Lock()
_groups: dict[int, tuple[str, int]] = {}  # pgid -> (name, stop signal)
_guard: subprocess.Popen[bytes] | None = None
_signalled = False
_started_ticks: int | None = None
_owner_pid: int | None = None  # the pytest process that called install()


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Proc:
    """One live process as ``/proc`` shows it."""

    pid: int
    ppid: int
    pgid: int
    start_ticks: int  # clock ticks after boot: with pid, identifies the process
    cmdline: str


def read_proc(pid: int) -> Proc | None:
    """Return the process ``pid`` (None when it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[19]), cmdline)


def all_procs() -> list[Proc]:
    """Every live process."""
    found = (
        read_proc(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit()
    )
    return [proc for proc in found if proc is not None]


def environ_of(pid: int) -> dict[str, str]:
    """The environment ``pid`` was started with ({} when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _sep, value in pairs}


def descendants(pid: int, procs: Iterable[Proc] | None = None) -> list[Proc]:
    """Every live descendant of ``pid`` (children, their children...)."""
    children: dict[int, list[Proc]] = {}
    for proc in all_procs() if procs is None else procs:
        children.setdefault(proc.ppid, []).append(proc)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def marked_processes(
    marker: str, *, since_ticks: int = 0, exclude: Iterable[int] = ()
) -> list[Proc]:
    """Live processes started with ``COVIDCT_TEST_RUN=marker`` at or after ``since_ticks``."""
    skip = {os.getpid(), *exclude}
    return [
        proc
        for proc in all_procs()
        if proc.pid not in skip
        and proc.start_ticks >= since_ticks
        and environ_of(proc.pid).get(MARKER_ENV) == marker
    ]


def _still(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.start_ticks == proc.start_ticks


def _kill(procs: Iterable[Proc], signum: int) -> None:
    for proc in procs:
        if _still(proc):  # not a recycled pid
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signum)


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signum)


def group_members(pgid: int, procs: Iterable[Proc] | None = None) -> list[Proc]:
    """Live members of process group ``pgid``."""
    return [proc for proc in (all_procs() if procs is None else procs) if proc.pgid == pgid]


def tree_of(pgid: int, procs: list[Proc] | None = None) -> dict[int, Proc]:
    """Group ``pgid``, its leader (even if it changed group) and all their descendants."""
    procs = all_procs() if procs is None else procs
    roots = group_members(pgid, procs) + [proc for proc in procs if proc.pid == pgid]
    tree = {}
    for root in roots:
        tree[root.pid] = root
        tree.update({proc.pid: proc for proc in descendants(root.pid, procs)})
    return tree


def stop_tree(pgid: int, *, signum: int = signal.SIGTERM, grace_s: float = GRACE_S) -> bool:
    """Stop group ``pgid`` and every descendant of its members, even those in other groups.

    Sends ``signum`` to the group and to the descendants, waits up to ``grace_s``, then
    SIGKILLs what is left. Returns True when everything ended before the SIGKILL.
    """
    procs = all_procs()
    tree = tree_of(pgid, procs)
    _killpg(pgid, signum)
    _kill(tree.values(), signum)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_still(proc) for proc in tree.values()):
        time.sleep(0.1)
    left = [proc for proc in tree.values() if _still(proc)]
    _killpg(pgid, signal.SIGKILL)
    _kill(left, signal.SIGKILL)
    return not left


# --------------------------------------------------------------------------- the registry


def register(pgid: int, name: str, stop_signal: int = signal.SIGTERM) -> None:
    """Record process group ``pgid`` (``name`` for messages) as one to stop at the end.

    ``stop_signal`` is what stops it cleanly (PostgreSQL: SIGINT, its fast shutdown).
    """
    with _lock:
        _groups[pgid] = (name, stop_signal)
    _tell_guard(f"+{pgid} {int(stop_signal)}")


def unregister(pgid: int) -> None:
    """Forget ``pgid`` once its owner has stopped it."""
    with _lock:
        _groups.pop(pgid, None)
    _tell_guard(f"-{pgid}")


def popen(name: str, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` in a new session, registered under ``name``."""
    process: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
    register(process.pid, name)
    return process


def stop_everything(grace_s: float = GRACE_S) -> list[str]:
    """Stop every recorded group and every marked process started by this run.

    All are signalled at once, then whatever is left after ``grace_s`` is killed. Returns
    what had to be killed, as ``name (pid)``.
    """
    with _lock:
        groups = dict(_groups)
        _groups.clear()
    procs = all_procs()
    tree: dict[int, tuple[str, Proc]] = {}
    for pgid, (name, _signum) in groups.items():
        for proc in tree_of(pgid, procs).values():
            tree[proc.pid] = (name, proc)
    marker = os.environ.get(MARKER_ENV)
    if marker and _started_ticks is not None:
        for proc in marked_processes(marker, since_ticks=_started_ticks, exclude=_own_family()):
            tree.setdefault(proc.pid, ("marked", proc))
    for pgid, (_name, signum) in groups.items():
        _killpg(pgid, signum)
    _kill((proc for _name, proc in tree.values()), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_still(proc) for _n, proc in tree.values()):
        time.sleep(0.1)
    killed = [f"{name} ({proc.pid})" for name, proc in tree.values() if _still(proc)]
    for pgid in groups:
        _killpg(pgid, signal.SIGKILL)
    _kill((proc for _name, proc in tree.values()), signal.SIGKILL)
    return killed


def _own_family() -> set[int]:
    """This process, its ancestors (make, uv, a parent pytest) and the guard."""
    family = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in family:
        family.add(pid)
        proc = read_proc(pid)
        pid = proc.ppid if proc else 1
    if _guard is not None:
        family.add(_guard.pid)
    return family


# --------------------------------------------------------------------------- pytest side


def _tell_guard(line: str) -> None:
    if os.getpid() == _owner_pid and _guard is not None and _guard.stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            _guard.stdin.write(line.encode() + b"\n")
            _guard.stdin.flush()


def _on_signal(signum: int, _frame: object) -> None:
    """SIGTERM/SIGINT: signal every recorded group now, then let pytest tear down.

    The first signal becomes ``KeyboardInterrupt`` (pytest runs the fixtures' finalizers and
    exits 2); the guard kills what is left :data:`GRACE_S` later. Repeated signals (a group
    signal plus ``uv`` forwarding it) only signal the groups again.
    """
    global _signalled
    if os.getpid() != _owner_pid:  # a forked child (multiprocessing): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _tell_guard(f"!{signum}")
    with _lock:
        groups = dict(_groups)
    for pgid, (_name, stop_signal) in groups.items():
        _killpg(pgid, stop_signal)
    if not _signalled:
        _signalled = True
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install() -> None:
    """Set the run marker, start the guard and install the signal handlers (pytest process)."""
    global _guard, _started_ticks, _owner_pid
    if _guard is not None:
        return
    _owner_pid = os.getpid()
    os.environ.setdefault(MARKER_ENV, f"covidct-test-{uuid.uuid4().hex}")
    own = read_proc(os.getpid())
    _started_ticks = own.start_ticks if own else 0
    guard_env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    guard_env["COVIDCT_GUARD_MARKER"] = os.environ[MARKER_ENV]
    _guard = subprocess.Popen(
        [sys.executable, "-S", str(Path(__file__).resolve()), "--guard",
         str(os.getpid()), str(_started_ticks)],
        stdin=subprocess.PIPE,
        env=guard_env,
        start_new_session=True,
        close_fds=True,
    )  # fmt: skip
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    atexit.register(_stop_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _stop_at_exit() -> None:
    if os.getpid() == _owner_pid:
        stop_everything()


def _after_fork_in_child() -> None:
    """A forked child must not hold the guard's pipe open nor stop the run's servers."""
    if _guard is not None and _guard.stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            _guard.stdin.close()  # only this child's copy of the descriptor
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)


# --------------------------------------------------------------------------- the guard


def _guard_main(parent_pid: int, since_ticks: int) -> int:
    """Kill recorded groups and marked processes when pytest ends or was signalled.

    Reads ``+PGID SIGNUM`` / ``-PGID`` / ``!SIGNUM`` lines from stdin. On EOF (pytest ended,
    however), or :data:`GRACE_S` after a ``!`` line, stops everything that is left.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    marker = os.environ.get("COVIDCT_GUARD_MARKER", "")
    groups: dict[int, int] = {}
    deadline: float | None = None
    buffer = b""
    stdin = sys.stdin.buffer.fileno()
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([stdin], [], [], timeout)
        if not ready:
            break  # signalled GRACE_S ago and pytest has not finished its teardown
        chunk = os.read(stdin, 4096)
        if not chunk:
            break  # pytest is gone
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode().strip()
            if text.startswith("+"):
                pgid, signum = text[1:].split()
                groups[int(pgid)] = int(signum)
            elif text.startswith("-"):
                groups.pop(int(text[1:]), None)
            elif text.startswith("!") and deadline is None:
                deadline = time.monotonic() + GRACE_S
    procs = all_procs()
    targets = {pid: proc for pgid in groups for pid, proc in tree_of(pgid, procs).items()}
    if marker:
        for proc in marked_processes(marker, since_ticks=since_ticks, exclude=(parent_pid,)):
            targets[proc.pid] = proc
    for pgid, signum in groups.items():
        _killpg(pgid, signum)
    _kill(targets.values(), signal.SIGTERM)
    end = time.monotonic() + 3.0
    while time.monotonic() < end and any(_still(proc) for proc in targets.values()):
        time.sleep(0.1)
    for pgid in groups:
        _killpg(pgid, signal.SIGKILL)
    _kill(targets.values(), signal.SIGKILL)
    return 0


# --------------------------------------------------------------------------- .ci/run's check


def _check_main(marker: str, wait_s: float) -> int:
    """Wait up to ``wait_s`` for marked processes to end; print those left and return 1."""
    deadline = time.monotonic() + wait_s
    left = marked_processes(marker, exclude=_own_family())
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = marked_processes(marker, exclude=_own_family())
    if not left:
        print(f"no process of test run {marker} is alive")
        return 0
    print(f"{len(left)} process(es) of test run {marker} still alive:", file=sys.stderr)
    for proc in left:
        print(f"  pid {proc.pid} (group {proc.pgid}): {proc.cmdline[:200]}", file=sys.stderr)
    return 1


def _run_main(command: list[str], wait_s: float) -> int:
    """Run ``command`` with a fresh run marker as a child subreaper; fail on leftovers.

    This process becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so every
    process ``command`` starts stays its descendant even when its parent dies. After
    ``command`` ends (or after SIGTERM/SIGINT, forwarded to it), it waits up to ``wait_s``
    for descendants and marked processes to end, prints and kills those left, and returns
    ``command``'s status, or 1 when it succeeded but left processes behind.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("warning: cannot become a child subreaper", file=sys.stderr)
    marker = os.environ.setdefault(MARKER_ENV, f"covidct-test-{uuid.uuid4().hex}")
    child = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda s, _f: child.send_signal(s))
    status = child.wait()

    def left() -> list[Proc]:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:  # reap orphans handed to us
                pass
        found = {proc.pid: proc for proc in descendants(os.getpid())}
        found.update({p.pid: p for p in marked_processes(marker, exclude=_own_family())})
        return list(found.values())

    deadline = time.monotonic() + wait_s
    remaining = left()
    while remaining and time.monotonic() < deadline:
        time.sleep(0.5)
        remaining = left()
    if not remaining:
        print(f"no process of test run {marker} is alive")
        return status
    print(f"{len(remaining)} process(es) of test run {marker} still alive {wait_s:.0f} s after "
          "it ended (killed now):", file=sys.stderr)  # fmt: skip
    for proc in remaining:
        print(f"  pid {proc.pid} (group {proc.pgid}): {proc.cmdline[:200]}", file=sys.stderr)
    _kill(remaining, signal.SIGKILL)
    return status or 1


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--run -- COMMAND...``, ``--check MARKER``, ``--guard PID TICKS``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", nargs=2, type=int, metavar=("PID", "TICKS"))
    parser.add_argument("--check", metavar="MARKER")
    parser.add_argument("--run", action="store_true", help="run the command after --")
    parser.add_argument("--wait", type=float, default=20.0)
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    if args.guard:
        return _guard_main(*args.guard)
    if args.check:
        return _check_main(args.check, args.wait)
    if args.run and args.command:
        return _run_main(args.command, args.wait)
    parser.error("--run -- COMMAND, --check MARKER or --guard PID TICKS")
    return 2


if __name__ == "__main__":
    sys.exit(main())
