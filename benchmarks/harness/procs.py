"""Server processes: started in their own session, stopped as a group, measured from /proc.

Every process the harness starts goes through `start()`, which records it; `stop_all()` (run
from `finally`, `atexit` and the SIGTERM handler) ends each recorded process group, so no run
leaves a server behind, whatever way it ends.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
ESTABLISHED = "01"


@dataclass
class Process:
    """One started command, leader of its own process group (so workers go with it)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """The leader and all its live descendants (uvicorn workers, multiprocessing helpers)."""
        return process_tree(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole tree so far."""
        return cpu_seconds(self.tree())

    def rss_bytes(self) -> int:
        """Resident memory of the whole tree now."""
        return rss_bytes(self.tree())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group, wait up to `grace` seconds, then SIGKILL whatever is left."""
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        # Workers may outlive a leader that exited; the group id stays valid while they do.
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        _LIVE.discard(self)
        log = self._log
        if log is not None and hasattr(log, "close"):
            log.close()

    def kill(self) -> None:
        """SIGKILL the group at once (a crash, as Redis outage tests want)."""
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        _LIVE.discard(self)

    def __hash__(self) -> int:
        return self.pid


_LIVE: set[Process] = set()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_dir: Path,
) -> Process:
    """Start `argv` in a new session, its output going to `log_dir/name.log`.

    It inherits this process's resource limits, RLIMIT_NOFILE as run.py raised it included.
    """
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    popen = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process = Process(name=name, popen=popen, log_path=log_path, _log=log)
    _LIVE.add(process)
    return process


def stop_all() -> None:
    """Stop every process `start()` started that is still recorded."""
    for process in list(_LIVE):
        process.stop(grace=3.0)


def _on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into an exception so `finally` blocks run, as they do for Ctrl-C.
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Stop started processes on normal exit, on exceptions, on Ctrl-C and on SIGTERM."""
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _on_sigterm)


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, found through /proc/<pid>/task/<tid>/children."""
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if not Path(f"/proc/{pid}").exists():
            continue
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                    pending.extend(int(child) for child in children)
    return found


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces, or "" once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def cpu_seconds(pids: Iterable[int]) -> float:
    """Sum of utime + stime (fields 14 and 15 of /proc/<pid>/stat) in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            # The command name may hold spaces and parentheses: split after the last ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Sum of resident set sizes (/proc/<pid>/statm, second field)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


def open_files_limit(pid: int | None = None) -> int:
    """The soft RLIMIT_NOFILE of `pid` (from /proc/<pid>/limits), or of this process."""
    if pid is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return sys.maxsize if soft == resource.RLIM_INFINITY else soft
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return sys.maxsize if value == "unlimited" else int(value)
    raise OSError(f"/proc/{pid}/limits has no 'Max open files' line")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_connections(port: int) -> dict[int, tuple[str, int, int]]:
    """Server-side IPv4 sockets on local `port`: remote port -> (state, inode, send queue bytes)."""
    result: dict[int, tuple[str, int, int]] = {}
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            parts = line.split()
            local_port = int(parts[1].rsplit(":", 1)[1], 16)
            if local_port != port:
                continue
            remote_port = int(parts[2].rsplit(":", 1)[1], 16)
            send_queue = int(parts[4].split(":", 1)[0], 16)
            result[remote_port] = (parts[3], int(parts[9]), send_queue)
    return result


def connections_per_process(pids: Iterable[int], port: int) -> dict[int, int]:
    """How many established connections on `port` each process holds (by socket inode)."""
    inodes = {inode for state, inode, _ in tcp_connections(port).values() if state == ESTABLISHED}
    counts: dict[int, int] = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                        count += 1
        counts[pid] = count
    return counts


async def wait_for_port(process: Process, port: int, timeout: float) -> None:
    """Return once `port` accepts TCP connections; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 0.5)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)  # polling a port that is not open yet: nothing to wait on
            continue
        writer.close()
        return
    raise TimeoutError(
        f"{process.name} did not listen on {port} in {timeout}s:\n{process.log_tail()}"
    )
