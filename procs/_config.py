"""Configuration: load one process's TOML section into its frozen Struct, or exit 78.

The only reader of ``BITRADER_RUN_DIR`` and ``BITRADER_NS``; strings in a section may contain
``{run_dir}`` and ``{ns}``, expanded here. Every decoded value is range-checked: msgspec's
``Meta`` constraints, then (here) no NaN or infinity anywhere and the ``Meta(extra=...)`` bounds
of Decimal fields (``PosDecimal``, ``NonNegDecimal``...), which msgspec itself cannot constrain.
Also ``bitrader config check FILE [SECTION...] [--group NAME]``, which checks a whole group file
too: every program of the group present with its runtime table, no port or endpoint bound twice.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import logging
import math
import operator
import os
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NoReturn, TypeVar

import msgspec

from ipc.endpoints import EndpointError, expand, ipc_path, is_loopback_host, is_remote, validate

__all__ = [
    "EXIT_CONFIG",
    "GROUPS",
    "SECTIONS",
    "ConfigError",
    "Env",
    "FeeRate",
    "HttpUrl",
    "NonNegDecimal",
    "PosDecimal",
    "RuntimeConfig",
    "Symbol",
    "WsUrl",
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
# msgspec constrains only int and float: Decimal bounds ride in Meta.extra, checked after decoding
PosDecimal = Annotated[Decimal, msgspec.Meta(extra={"gt": 0})]
NonNegDecimal = Annotated[Decimal, msgspec.Meta(extra={"ge": 0})]
FeeRate = Annotated[Decimal, msgspec.Meta(extra={"ge": "-0.01", "le": "0.01"})]  # maker may be < 0
Symbol = Annotated[str, msgspec.Meta(pattern="^[A-Z0-9]{2,32}$")]  # the venue's, e.g. BTCUSDT
_HOST: Final = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?"
HttpUrl = Annotated[str, msgspec.Meta(pattern=rf"^https?://{_HOST}(/\S*)?$")]
WsUrl = Annotated[str, msgspec.Meta(pattern=rf"^wss?://{_HOST}(/\S*)?$")]

# supervisord.conf's groups: a group file must hold each program's section and its runtime
GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "pipeline": ("simex", "ingest", "capture", "features", "inference", "execution", "dashboard"),
    "live": ("ingest", "capture", "features", "inference", "execution", "dashboard"),
    "transport": ("producer", "consumer"),
    # [group] topology = "colocated" (procs/_topology.py): hotpath hosts ingest, features,
    # inference and execution, each configured by its own section
    "pipeline-colocated": ("simex", "capture", "hotpath", "dashboard"),
    "live-colocated": ("capture", "hotpath", "dashboard"),
}
_BOUNDS: Final[dict[str, tuple[Callable[[Any, Any], bool], str]]] = {
    "gt": (operator.gt, ">"),
    "ge": (operator.ge, ">="),
    "lt": (operator.lt, "<"),
    "le": (operator.le, "<="),
}

# section -> "module:Type", imported only when that section is checked; a section not listed
# here is looked up by convention: <Section>Config in procs.<section> or procs.<section>.config
SECTIONS: dict[str, str] = {
    "capture": "procs.capture.proc:CaptureConfig",
    "execution": "procs.trading.config:ExecutionConfig",
    "features": "procs.featurecalc.config:FeaturesConfig",
    "inference": "procs.models.config:InferenceConfig",
    "ingest": "procs.marketdata.config:IngestConfig",
    "producer": "procs.transport.producer:ProducerConfig",
    "consumer": "procs.transport.consumer:ConsumerConfig",
    "group": "procs._topology:GroupConfig",
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
    # the scheduling class of the process's threads (procs/_sched.py; docs/
    # operations.md, "Scheduling"): fifo/rr take a priority 1-99 and need CAP_SYS_NICE or
    # RLIMIT_RTPRIO, a negative nice CAP_SYS_NICE or RLIMIT_NICE; refused, the process logs it
    # and runs on in the class it has, unless sched_required (then it exits 78)
    sched_policy: Literal["other", "batch", "idle", "fifo", "rr"] = "other"
    sched_priority: Annotated[int, msgspec.Meta(ge=0, le=99)] = 0
    nice: Annotated[int, msgspec.Meta(ge=-20, le=19)] = 0
    sched_required: bool = False
    heartbeat_s: PosFloat = 1.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    allow_remote_endpoints: bool = False  # bind tcp on a non-loopback host (multi-host split)
    # peers allowed to reach anything bound beyond loopback (PUB, control, /metrics): required
    # for such a bind, as is control_token_file (docs/operations.md, "Authenticated control")
    allow_ips: list[str] = []
    # the token that signs control requests; "" = control.token beside an ipc control socket
    control_token_file: str = ""

    def __post_init__(self) -> None:
        for name in ("pub_endpoint", "control_endpoint"):
            try:
                validate(getattr(self, name), allow_remote=self.allow_remote_endpoints)
            except EndpointError as exc:
                # msgspec turns this into a ValidationError that names the struct's path
                raise ValueError(f"{name}: {exc}") from None
        if self.pub_endpoint == self.control_endpoint:
            raise ValueError("pub_endpoint and control_endpoint must differ")
        realtime = self.sched_policy in ("fifo", "rr")
        if realtime and not self.sched_priority:
            raise ValueError(f"sched_policy {self.sched_policy} needs sched_priority 1-99")
        if not realtime and self.sched_priority:
            raise ValueError(f"sched_priority is for fifo/rr only, not {self.sched_policy}")
        exposed = [n for n in ("pub_endpoint", "control_endpoint") if is_remote(getattr(self, n))]
        if not is_loopback_host(self.metrics_host):
            exposed.append("metrics_host")
        for ip in self.allow_ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"allow_ips: {ip!r} is not an IP address") from None
        if exposed and not (self.allow_ips and self.control_token_file):
            raise ValueError(
                f"{', '.join(exposed)} beyond loopback need allow_ips and control_token_file"
            )

    @property
    def token_file(self) -> str:
        """Where the control token is: ``control_token_file``, else beside the control socket."""
        if self.control_token_file:
            return self.control_token_file
        path = ipc_path(self.control_endpoint)
        return "" if path is None else str(path.parent / "control.token")


def check_endpoint(name: str, endpoint: str, *, allow_remote: bool = False) -> None:
    """Validate a connect endpoint in a ``__post_init__``; ValueError names the field.

    A value still holding ``{run_dir}`` or ``{ns}`` (a default, before ``decode_section``
    expands it) is checked on the second, expanded decode instead.
    """
    if "{run_dir}" in endpoint or "{ns}" in endpoint:
        return
    try:
        validate(endpoint, allow_remote=allow_remote)
    except EndpointError as exc:
        raise ValueError(f"{name}: {exc}") from None


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
        if expanded != filled:
            decoded = msgspec.convert(expanded, type_)
    except msgspec.ValidationError as exc:
        # msgspec paths start at the section: "... - at `$.runtime.cpus[0]`"
        msg = str(exc).replace("`$", f"`$.{section}")
        if "`$" not in str(exc):
            msg = f"{msg} - at `$.{section}`"
        raise ConfigError(f"config error file={path}: {msg}") from None
    problems = list(value_errors(decoded, f"$.{section}"))
    if problems:
        raise ConfigError(f"config error file={path}: {'; '.join(problems)}")
    return decoded


def _unwrap_bounds(tp: object) -> dict[str, Decimal]:
    if typing.get_origin(tp) is Annotated:
        out: dict[str, Decimal] = {}
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.extra:
                out |= {k: Decimal(str(v)) for k, v in meta.extra.items() if k in _BOUNDS}
        return out
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[...]
        for arg in typing.get_args(tp):
            found = _unwrap_bounds(arg)
            if found:
                return found
    return {}


@functools.cache
def _field_bounds(cls: type[msgspec.Struct]) -> dict[str, dict[str, Decimal]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {name: _unwrap_bounds(hints.get(name)) for name in cls.__struct_fields__}


def _finite(v: object) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return not isinstance(v, Decimal) or v.is_finite()


def value_errors(value: object, where: str = "$") -> Iterator[str]:
    """Yield what is wrong with a decoded config: non-finite numbers, Decimals out of bounds.

    Each message ends like msgspec's, with the field's path: ``- at `$.risk.max_x```.
    """
    if isinstance(value, msgspec.Struct):
        bounds = _field_bounds(type(value))
        for name in value.__struct_fields__:
            v, at = getattr(value, name), f"{where}.{name}"
            if isinstance(v, Decimal | int | float) and not isinstance(v, bool) and _finite(v):
                for op, bound in bounds[name].items():
                    test, sign = _BOUNDS[op]
                    if not test(Decimal(str(v)), bound):
                        yield f"Expected a number {sign} {bound}, got {v} - at `{at}`"
            yield from value_errors(v, at)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from value_errors(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from value_errors(v, f"{where}.{k}")
    elif not _finite(value):
        yield f"Expected a finite number, got {value} - at `{where}`"


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


def _bind_key(endpoint: str) -> str | None:
    if endpoint.startswith("tcp://"):
        return f"port {endpoint.rsplit(':', 1)[-1]}"
    if endpoint.startswith("ipc://"):
        return f"endpoint {endpoint}"
    return None  # inproc: private to one process


def _binds(value: object, where: str) -> Iterator[tuple[str, str]]:
    """Yield (what is bound, field path): each ``port``/``*_port`` > 0, each runtime endpoint."""
    if not isinstance(value, msgspec.Struct):
        return
    for name in value.__struct_fields__:
        v, at = getattr(value, name), f"{where}.{name}"
        if (name == "port" or name.endswith("_port")) and type(v) is int and v > 0:
            yield f"port {v}", at
        elif name.endswith("_endpoint") and isinstance(value, RuntimeConfig):
            key = _bind_key(v)
            if key is not None:
                yield key, at
        else:
            yield from _binds(v, at)


def _bind_errors(decoded: Mapping[str, object], path: str | Path) -> list[str]:
    seen: dict[str, str] = {}
    errors = []
    for section, value in decoded.items():
        for key, at in _binds(value, f"$.{section}"):
            if key in seen:
                errors.append(
                    f"config error file={path} path={at}: {key} is also bound by {seen[key]}"
                    " (ports and endpoints must be unique across the group)"
                )
            else:
                seen[key] = at
    return errors


def _infer_group(tables: set[str]) -> str | None:
    if tables & set(GROUPS["transport"]):
        return "transport"
    if tables & set(GROUPS["live"]):
        return "pipeline" if "simex" in tables else "live"
    return None  # e.g. simex alone (configs/simex.toml): no group to complete


def _group_errors(doc: Mapping[str, Any], path: str | Path, group: str | None) -> list[str]:
    tables = {k for k, v in doc.items() if isinstance(v, dict)}
    name = group or _infer_group(tables)
    if name is None:
        return []
    from procs._topology import HOSTED

    programs = tuple(s for p in GROUPS[name] for s in HOSTED.get(p, (p,)))
    errors = [
        f"config error file={path} path=$.{p}: section [{p}] missing"
        f" (group {name} runs {', '.join(programs)})"
        for p in programs
        if p not in tables
    ]
    errors += [
        f"config error file={path} path=$.{p}.runtime: the [{p}.runtime] table is missing"
        f" (every program of group {name} needs one)"
        for p in programs
        if p in tables and not isinstance(doc[p].get("runtime"), dict)
    ]
    return errors


def check_file(
    path: str | Path,
    sections: Sequence[str] = (),
    group: str | None = None,
    env: Env | None = None,
) -> list[str]:
    """Validate ``sections`` of ``path`` (default: every table); return the errors found.

    Checking the whole file (no ``sections``) also checks it as a group file: not empty, every
    program of ``group`` (default: inferred from the sections present) there with its runtime
    table, and no port or endpoint bound twice. ``env`` (default: ``load_env``) fills in
    ``{run_dir}`` and ``{ns}``.
    """
    if group is not None and group not in GROUPS:
        return [f"config error: unknown group {group!r} (known: {', '.join(GROUPS)})"]
    try:
        doc = read_toml(path)
    except ConfigError as exc:
        return [str(exc)]
    env = env or load_env(path)
    names = list(sections) or [k for k, v in doc.items() if isinstance(v, dict)]
    if not names:
        return [f"config error file={path}: no sections (an empty file configures nothing)"]
    errors: list[str] = []
    if not sections or group is not None:
        errors += _group_errors(doc, path, group)
    decoded: dict[str, object] = {}
    for name in names:
        try:
            type_ = _section_type(name)
            if type_ is None:
                if sections:
                    errors.append(f"config error file={path}: no type registered for [{name}]")
                else:
                    log.warning("unchecked section=%s reason=no_registered_type", name)
                continue
            decoded[name] = decode_section(doc, name, type_, path=path, env=env)
            log.info("ok section=%s type=%s", name, type_.__name__)
        except ConfigError as exc:
            errors.append(str(exc))
    if not sections or group is not None:
        errors += _bind_errors(decoded, path)
    return errors


def main_cli(argv: Sequence[str] | None = None) -> int:
    """``bitrader config check FILE [SECTION...] [--group G]``: exit 0 if valid, 78 otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    group = None
    if "--group" in args[:-1]:
        at = args.index("--group")
        group = args.pop(at + 1)
        args.pop(at)
    if len(args) < 2 or args[0] != "check" or any(a.startswith("-") for a in args):
        log.error("usage: bitrader config check FILE [SECTION...] [--group %s]", "|".join(GROUPS))
        return 2
    errors = check_file(args[1], args[2:], group)
    for error in errors:
        log.error("%s", error)
    return EXIT_CONFIG if errors else 0
