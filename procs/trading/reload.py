"""Hot reload of risk limits and strategy parameters: SIGHUP, or the signed ``reload`` command.

The config file is read and validated whole, exactly as at start; a bad file changes nothing
(logged, counted, and journaled as a ``reload_refused`` row). A good one replaces
``[execution.risk]`` and ``[execution.strategy]``; every changed field is journaled with its old
and new value (an audited ``reload`` row). Changes elsewhere need a restart (logged as ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec
from prometheus_client import CollectorRegistry, Counter

from ipc.messages import Value
from procs._config import ConfigError, Env, decode_section, read_toml
from procs.observe import NAMESPACE
from procs.trading.config import ExecutionConfig, RiskConfig, StrategyConfig
from procs.trading.risk import RiskEngine
from procs.trading.strategy import Strategy

log = logging.getLogger(__name__)

RELOADABLE = ("risk", "strategy")


class Tunable(Protocol):
    """What a reload changes (``ExecutionProc``): its risk engine and, once open, its strategy."""

    @property
    def risk(self) -> RiskEngine: ...

    @property
    def strategy(self) -> Strategy | None: ...


def apply_to(proc: Tunable) -> Callable[[RiskConfig, StrategyConfig], None]:
    """The ``apply`` that hands new limits and parameters to ``proc``'s engines."""

    def apply(risk: RiskConfig, strategy: StrategyConfig) -> None:
        proc.risk.reconfigure(risk)
        if proc.strategy is not None:
            proc.strategy.reconfigure(strategy)

    return apply


class EventJournal(Protocol):
    def record_event(self, kind: str, body: dict[str, object], ts_ns: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    changes: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # sections that changed but need a restart
    error: str = ""


def diff(old: msgspec.Struct, new: msgspec.Struct) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field that differs (values as the config writes them)."""
    a, b = msgspec.to_builtins(old), msgspec.to_builtins(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


class Reloader:
    """Re-reads ``path`` on request and applies the reloadable sections through ``apply``."""

    def __init__(
        self,
        path: str | Path,
        env: Env,
        current: ExecutionConfig,
        apply: Callable[[RiskConfig, StrategyConfig], None],
        journal: EventJournal,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._path = path
        self._env = env
        self._current = current  # what is in force: the start config, then each reload
        self._apply = apply
        self._journal = journal
        self.applied_total = 0
        self.failed_total = 0
        self._counter = Counter(
            f"{NAMESPACE}_config_reloads", "SIGHUP reloads by result (applied, unchanged,"
            " refused)", ["result"], registry=registry,
        )  # fmt: skip

    def reload(self) -> ReloadResult:
        """Validate the file, apply risk and strategy, journal the changes; never raises."""
        try:
            new = decode_section(
                read_toml(self._path), "execution", ExecutionConfig, path=self._path, env=self._env
            )
        except ConfigError as exc:
            self.failed_total += 1
            self._counter.labels("refused").inc()
            log.error("reload refused, old values kept: %s", exc)
            self._journal.record_event(
                "reload_refused", {"file": str(self._path), "error": str(exc)}
            )
            return ReloadResult(False, error=str(exc))
        cur = self._current
        changes = {s: diff(getattr(cur, s), getattr(new, s)) for s in RELOADABLE}
        changes = {s: d for s, d in changes.items() if d}
        ignored = [
            name
            for name in sorted(msgspec.structs.asdict(cur))
            if name not in RELOADABLE
            and msgspec.to_builtins(getattr(cur, name)) != msgspec.to_builtins(getattr(new, name))
        ]
        if ignored:
            log.warning("reload ignores changed settings (restart to apply): %s", ignored)
        if not changes:
            log.info("reload: risk and strategy unchanged")
            self._counter.labels("unchanged").inc()
            return ReloadResult(True, ignored=ignored)
        self._journal.record_event("reload", {"file": str(self._path), "changes": changes})
        self._apply(new.risk, new.strategy)
        self._current = msgspec.structs.replace(cur, risk=new.risk, strategy=new.strategy)
        self.applied_total += 1
        self._counter.labels("applied").inc()
        for section, fields in changes.items():
            for name, (old, value) in fields.items():
                log.warning("reload applied %s.%s old=%s new=%s", section, name, old, value)
        return ReloadResult(True, changes, ignored)

    def command(self, args: dict[str, str]) -> dict[str, Value]:
        """The ``reload`` control command (signed, audited): reload now, say what changed."""
        result = self.reload()
        if not result.ok:
            raise ValueError(f"reload refused, old values kept: {result.error}")
        fields = [f"{s}.{k}" for s, d in result.changes.items() for k in d]
        return {"changed": ",".join(fields), "ignored": ",".join(result.ignored)}
