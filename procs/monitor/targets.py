"""The group's scrape targets, read from its config, and the ``prometheus.yml`` that scrapes them.

Every section with a ``[<proc>.runtime]`` table whose ``metrics_port`` is set is one target, so
the ports Prometheus scrapes are always the ones the processes bind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from procs._config import ConfigError, read_toml

__all__ = [
    "DEFAULT_INTERVAL_S",
    "JOB",
    "RULE_FILES",
    "PromSettings",
    "Target",
    "prometheus_config",
    "read_targets",
]

JOB: Final = "bitrader"
RULE_FILES: Final = ("bitrader-recording.yml", "bitrader-alerts.yml")
DEFAULT_INTERVAL_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    proc: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PromSettings:
    """Prometheus's timing: the e2e test shortens both to a second."""

    scrape_interval_s: float = DEFAULT_INTERVAL_S
    evaluation_interval_s: float = DEFAULT_INTERVAL_S


def read_targets(config_path: str | Path) -> list[Target]:
    """Return one target per process with a ``metrics_port``; ConfigError if there is none."""
    doc = read_toml(config_path)
    out = []
    for proc, section in doc.items():
        runtime = section.get("runtime") if isinstance(section, dict) else None
        if not isinstance(runtime, dict):
            continue
        port = runtime.get("metrics_port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
            raise ConfigError(f"config error file={config_path} path=$.{proc}.runtime.metrics_port")
        if port:
            out.append(Target(proc, str(runtime.get("metrics_host", "127.0.0.1")), port))
    if not out:
        raise ConfigError(f"config error file={config_path}: no [<proc>.runtime] metrics_port set")
    return out


def _duration(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def prometheus_config(targets: list[Target], settings: PromSettings) -> dict[str, Any]:
    """The ``prometheus.yml`` document: one job, one static group per process (label ``proc``).

    ``honor_labels``: every sample already carries ``proc`` from the process itself; the target
    label gives ``up`` (which has only target labels) the same ``proc``.
    """
    return {
        "global": {
            "scrape_interval": _duration(settings.scrape_interval_s),
            "scrape_timeout": _duration(min(settings.scrape_interval_s, 10.0)),
            "evaluation_interval": _duration(settings.evaluation_interval_s),
            "external_labels": {"system": JOB},
        },
        "rule_files": list(RULE_FILES),
        "scrape_configs": [
            {
                "job_name": JOB,
                "honor_labels": True,
                "static_configs": [
                    {"targets": [t.address], "labels": {"proc": t.proc}} for t in targets
                ],
            }
        ],
    }
