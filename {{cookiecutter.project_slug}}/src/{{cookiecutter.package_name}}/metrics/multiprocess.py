"""Several worker processes, one set of figures: prometheus-client's multiprocess mode.

With `PROMETHEUS_MULTIPROC_DIR` set when prometheus-client is first imported,
every process writes its metrics' values to files in that directory, and a
scrape of any process reads them all (`MultiProcessCollector`): counters and
histograms summed over every process that ever ran, gauges as each declares
(`livesum`: summed over the processes alive).
https://prometheus.github.io/client_python/multiprocess/
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import multiprocess

from . import PREFIX

logger = logging.getLogger(__name__)

DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# The files a live gauge of process <pid> writes (prometheus_client.values).
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def enabled() -> bool:
    """Whether this process runs in multiprocess mode (the variable is set)."""
    return DIRECTORY in os.environ


@contextlib.contextmanager
def shared_directory(workers: int) -> Iterator[None]:
    """With several `workers`, a fresh directory in PROMETHEUS_MULTIPROC_DIR for them
    (they inherit it) until the block ends, then removed. One set by the user is
    theirs: used as it is, never removed. Raises SystemExit with one line (as
    `check_directory`) if it is not a directory this process can write in."""
    if DIRECTORY in os.environ:
        check_directory()
        yield
        return
    if workers < 2:
        yield
        return
    path = tempfile.mkdtemp(prefix=f"{PREFIX}-metrics-")
    os.environ[DIRECTORY] = path
    try:
        yield
    finally:
        del os.environ[DIRECTORY]
        shutil.rmtree(path, ignore_errors=True)


def check_directory() -> None:
    """Raises SystemExit with one line naming PROMETHEUS_MULTIPROC_DIR when it is set to
    something other than a directory this process can write in: else the first metric
    created would stop the process with prometheus-client's traceback."""
    chosen = os.environ.get(DIRECTORY)
    if chosen is None:
        return
    if not Path(chosen).is_dir():
        raise SystemExit(f"error: {DIRECTORY}: {chosen!r} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=chosen):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise SystemExit(f"error: {DIRECTORY}: cannot write in {chosen!r} ({reason})") from None


def forget_this_process() -> None:
    """Remove this process's live gauges from the directory: it is stopping.

    Called as the hub stops, not at exit: a uvicorn worker ends by raising
    the SIGTERM it caught again once it has shut down, so `atexit` never runs.
    """
    # prometheus-client leaves this function unannotated.
    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def forget_dead() -> None:
    """Remove the live gauges of processes that are gone without saying so (killed,
    crashed): else their last values would count until the directory is removed."""
    path = os.environ.get(DIRECTORY)
    if path is None:
        return
    found = (_LIVE_GAUGE_FILE.fullmatch(name) for name in os.listdir(path))
    pids = {int(match[1]) for match in found if match}
    for pid in pids:
        if not _alive(pid):
            logger.info("metrics: worker process %d is gone; its gauges no longer count", pid)
            # prometheus-client leaves this function unannotated.
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True
