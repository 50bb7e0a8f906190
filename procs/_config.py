"""Configuration: load one process's TOML section into its frozen Struct, or exit 78.

The only reader of ``BITRADER_RUN_DIR`` and ``BITRADER_NS``; strings in a section may contain
``{run_dir}`` and ``{ns}``, expanded here. Also ``bitrader config check FILE [SECTION...]``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NoReturn, TypeVar

import msgspec

from ipc.endpoints import EndpointError, expand, validate

__all__ = [
    "EXIT_CONFIG",
    "SECTIONS",
    "ConfigError",
    "Env",
    "RuntimeConfig",
    "check_file",
    "config_file",
    "load_env",
    "load_section",
    "main_cli",
]

log = logging.getLogger(__name__)

EXIT_CONFIG: Final = 78  # EX_CONFIG; procs._runtime re-exports it
DEFAULT_RUN_DIR: Final = "./run"

T = TypeVar("T")

NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Core = Annotated[int, msgspec.Meta(ge=0)]

# section -> "module:Type", imported only when that section is checked; a section not listed
# here is looked up by convention: <Section>Config in procs.<section> or procs.<section>.config
SECTIONS: dict[str, str] = {
    "capture": "procs.capture.proc:CaptureConfig",
    "inference": "procs.inference.proc:InferenceConfig",
    "producer": "procs.transport.producer:ProducerConfig",
    "consumer": "procs.transport.consumer:ConsumerConfig",
}


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file and the field path."""


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[<proc>.runtime]`` table every process carries (see ``procs._runtime``)."""

    pub_endpoint: str  # this process's PUB: heartbeats, wake-ups, its own topics
    control_endpoint: str  # this process's REP: health, stop
    cpus: list[Core] = []  # pin the process here; empty = leave the inherited affinity
    io_cpus: list[Core] = []  # zmq I/O threads' cores; empty = same as cpus (see pin_io_threads)
    metrics_port: Port = 0  # 0 = no /metrics server
    metrics_host: str = "127.0.0.1"
    waiter: Literal["spin", "hybrid", "block"] = "block"
    spin_s: NonNegFloat = 20e-6  # hybrid: spin this long after the last work before blocking
    max_sleep_s: PosFloat = 1e-3  # block: the longest backoff sleep
    wake_timeout_s: PosFloat = 0.01  # hybrid: bounds a lost wake-up; also stop/heartbeat lag
    # the main thread's scheduler time slice in µs (shm.waiters.set_sched_slice); 0 keeps the
    # kernel's. 100 lets a wake-up preempt a busy neighbour on the core sooner, but lets the
    # process be preempted mid-burst too; on 2 shared cores it was no clear gain for the group
    # (docs/bench-tick-to-order.md, "Per hop"), so no shipped config asks for it
    sched_slice_us: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    heartbeat_s: PosFloat = 1.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    allow_remote_endpoints: bool = False  # bind tcp on a non-loopback host (multi-host split)

    def __post_init__(self) -> None:
        for name in ("pub_endpoint", "control_endpoint"):
            try:
                validate(getattr(self, name), allow_remote=self.allow_remote_endpoints)
            except EndpointError as exc:
                # msgspec turns this into a ValidationError that names the struct's path
                raise ValueError(f"{name}: {exc}") from None
        if self.pub_endpoint == self.control_endpoint:
            raise ValueError("pub_endpoint and control_endpoint must differ")


@dataclass(frozen=True, slots=True)
class Env:
    """Where this run lives: expanded into ``{run_dir}`` and ``{ns}``."""

    run_dir: str
    ns: str


def load_env(config_path: str | Path, environ: Mapping[str, str] | None = None) -> Env:
    """Read ``BITRADER_RUN_DIR`` (default ``./run``) and ``BITRADER_NS`` (default: file stem)."""
    env = os.environ if environ is None else environ
    run_dir = os.path.abspath(env.get("BITRADER_RUN_DIR") or DEFAULT_RUN_DIR)
    ns = env.get("BITRADER_NS") or Path(config_path).stem
    return Env(run_dir=run_dir, ns=ns)


def _expand_all(value: Any, env: Env) -> Any:
    if isinstance(value, str):
        return expand(value, run_dir=env.run_dir, ns=env.ns)
    if isinstance(value, dict):
        return {k: _expand_all(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_all(v, env) for v in value]
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse the TOML file at ``path``; raise ConfigError naming the file on failure."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config error file={path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config error file={path}: {exc}") from None


def decode_section(
    doc: Mapping[str, Any], section: str, type_: type[T], *, path: str | Path, env: Env
) -> T:
    """Expand templates in ``doc[section]`` and in the type's defaults; decode as ``type_``.

    Raises
    ------
    ConfigError
        The section is missing or not a table, or a field is unknown, mistyped or out of
        range; the message carries ``$.<section>.<field>`` as msgspec reports it.
    """
    raw = doc.get(section)
    if not isinstance(raw, dict):
        what = "missing" if raw is None else "not a table"
        raise ConfigError(f"config error file={path} path=$.{section}: section [{section}] {what}")
    try:
        decoded = msgspec.convert(_expand_all(raw, env), type_)
        # defaults may hold templates too ("{ns}.ingest.md.book"): expand those and decode again
        filled = msgspec.to_builtins(decoded)
        expanded = _expand_all(filled, env)
        return decoded if expanded == filled else msgspec.convert(expanded, type_)
    except msgspec.ValidationError as exc:
        # msgspec paths start at the section: "... - at `$.runtime.cpus[0]`"
        msg = str(exc).replace("`$", f"`$.{section}")
        if "`$" not in str(exc):
            msg = f"{msg} - at `$.{section}`"
        raise ConfigError(f"config error file={path}: {msg}") from None


def _fail(exc: ConfigError) -> NoReturn:
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
    log.error("%s", exc)
    raise SystemExit(EXIT_CONFIG)


def _config_path(path_or_argv: str | Path | Sequence[str] | None) -> str | Path:
    if isinstance(path_or_argv, (str, Path)):
        return path_or_argv
    argv = sys.argv[1:] if path_or_argv is None else list(path_or_argv)
    if len(argv) != 1:
        raise ConfigError(f"usage: python -m procs.<proc> CONFIG.toml (got arguments {argv})")
    return argv[0]


def config_file(path_or_argv: str | Path | Sequence[str] | None) -> str | Path | None:
    """The config path ``load_section`` reads for ``path_or_argv`` (None: no single argument)."""
    try:
        return _config_path(path_or_argv)
    except ConfigError:
        return None


def load_section(
    path_or_argv: str | Path | Sequence[str] | None, section: str, type_: type[T]
) -> T:
    """Return ``[section]`` of the TOML file decoded as ``type_``; exit 78 on any error.

    ``path_or_argv`` is a path, or an argv whose only item is the path (None: ``sys.argv``).
    The error is logged once, naming the file and the field path, then
    ``SystemExit(EXIT_CONFIG)`` is raised.
    """
    try:
        path = _config_path(path_or_argv)
        return decode_section(read_toml(path), section, type_, path=path, env=load_env(path))
    except ConfigError as exc:
        _fail(exc)


def _import_type(module_name: str, attr: str, *, required: bool) -> type[Any] | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not required and module_name.startswith(missing):
            return None  # that module (or its package) does not exist: nothing to check
        raise ConfigError(f"cannot import {module_name}: {exc}") from None
    found = getattr(module, attr, None)
    if isinstance(found, type):
        return found
    if required:
        raise ConfigError(f"{module_name} has no type {attr}")
    return None


def _section_type(section: str) -> type[Any] | None:
    target = SECTIONS.get(section)
    try:
        if target is not None:
            module_name, _, attr = target.partition(":")
            return _import_type(module_name, attr, required=True)
        # convention: procs/<section>.py or procs/<section>/config.py defines <Section>Config
        attr = f"{section.title().replace('_', '')}Config"
        for module_name in (f"procs.{section}", f"procs.{section}.config"):
            found = _import_type(module_name, attr, required=False)
            if found is not None:
                return found
        return None
    except ConfigError as exc:
        raise ConfigError(f"section [{section}]: {exc}") from None


def check_file(path: str | Path, sections: Sequence[str] = ()) -> list[str]:
    """Validate ``sections`` of ``path`` (default: every table); return the errors found."""
    try:
        doc = read_toml(path)
    except ConfigError as exc:
        return [str(exc)]
    env = load_env(path)
    names = list(sections) or [k for k, v in doc.items() if isinstance(v, dict)]
    errors: list[str] = []
    for name in names:
        try:
            type_ = _section_type(name)
            if type_ is None:
                if sections:
                    errors.append(f"config error file={path}: no type registered for [{name}]")
                else:
                    log.warning("unchecked section=%s reason=no_registered_type", name)
                continue
            decode_section(doc, name, type_, path=path, env=env)
            log.info("ok section=%s type=%s", name, type_.__name__)
        except ConfigError as exc:
            errors.append(str(exc))
    return errors


def main_cli(argv: Sequence[str] | None = None) -> int:
    """``bitrader config check FILE [SECTION...]``: exit 0 if valid, 78 otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    if len(args) < 2 or args[0] != "check":
        log.error("usage: bitrader config check FILE [SECTION...]")
        return 2
    errors = check_file(args[1], args[2:])
    for error in errors:
        log.error("%s", error)
    return EXIT_CONFIG if errors else 0
