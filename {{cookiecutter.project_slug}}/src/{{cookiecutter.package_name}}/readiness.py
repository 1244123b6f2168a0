"""Readiness: named checks that say whether each dependency is usable now.

Features register a check when they open a resource; `GET /ready` runs them
all at once, each under a timeout, and reports every failing one by name.
Reasons name hosts and addresses, so they go to the log (when a check's
outcome changes), never into the unauthenticated answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# A check returns None when the dependency is usable, else a short reason.
Check = Callable[[], Awaitable[str | None]]


class Readiness:
    """A registry of named readiness checks."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._checks: dict[str, Check] = {}
        # Each check's last outcome, so that the log shows changes, not every probe.
        self._last: dict[str, str] = {}

    def add(self, name: str, check: Check) -> None:
        """Register `check` under `name`; a name is used once."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    def remove(self, name: str) -> None:
        """Forget the check `name` (when its resource closes)."""
        self._checks.pop(name, None)

    async def run(self) -> dict[str, str]:
        """Run every check concurrently; map each name to "ok" or its failure reason.

        Logs each check whose outcome changed since the last run: a WARNING
        with the reason when it fails, INFO when it is ok again.
        """
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_one(self._checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        for name, outcome in results.items():
            if self._last.get(name, "ok") != outcome:
                if outcome == "ok":
                    logger.info("readiness check %r is ok again", name)
                else:
                    logger.warning("readiness check %r failing: %s", name, outcome)
        self._last = results
        return results

    async def _run_one(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                reason = await check()
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as exc:  # a check that crashes reports, it never breaks /ready
            return f"{type(exc).__name__}: {exc}"
        return "ok" if reason is None else reason
