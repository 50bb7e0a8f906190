"""``GRID.toml``: the config values a sweep tries, one list per key; checked before any run.

Each key is a dotted path into the group's config file, each value the list of values it takes:

    [execution.strategy]
    enter_score = [0.2, 0.3]        # the same as "execution.strategy.enter_score" = [...]
    "backtest.latency.entry_s" = [0.001, 0.005]

A path that does not start with a section the backtest reads (``features``, ``inference``,
``execution``, ``backtest``) is under ``[execution]``: ``strategy.enter_score`` is
``execution.strategy.enter_score``. The grid is the Cartesian product of the lists, in key order.
A path that names no field of the live config types is refused here (``GridError``); a value the
live code refuses is refused when each point's config is decoded (``procs.backtest.sweep``).
"""

from __future__ import annotations

import copy
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

__all__ = ["SECTIONS", "Grid", "GridError", "apply", "read_grid"]

SECTIONS: Final = ("features", "inference", "execution", "backtest")
DEFAULT_SECTION: Final = "execution"
MAX_POINTS: Final = 100_000  # a typo in a range should not build a million configs


class GridError(Exception):
    """A grid file the sweep cannot use (the message names the file and the key)."""


@dataclass(frozen=True)
class Grid:
    keys: tuple[str, ...]  # full dotted paths, in file order
    values: tuple[tuple[Any, ...], ...]  # values[i]: what keys[i] takes

    def points(self) -> list[dict[str, Any]]:
        """Every combination, the last key varying fastest; ``{}`` alone for an empty grid."""
        return [
            dict(zip(self.keys, combo, strict=True)) for combo in itertools.product(*self.values)
        ]

    def size(self) -> int:
        n = 1
        for v in self.values:
            n *= len(v)
        return n


def _section_types() -> dict[str, type[msgspec.Struct]]:
    from procs.backtest.config import BacktestConfig
    from procs.featurecalc.config import FeaturesConfig
    from procs.models.config import InferenceConfig
    from procs.trading.config import ExecutionConfig

    return {
        "features": FeaturesConfig,
        "inference": InferenceConfig,
        "execution": ExecutionConfig,
        "backtest": BacktestConfig,
    }


def _leaves(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _leaves(v, f"{path}.")
        else:
            out.append((path, v))
    return out


def _struct_of(t: msgspec.inspect.Type) -> msgspec.inspect.StructType | None:
    """The struct behind a field type (through ``Optional`` and ``Annotated``), else None."""
    if isinstance(t, msgspec.inspect.Metadata):
        return _struct_of(t.type)
    if isinstance(t, msgspec.inspect.StructType):
        return t
    if isinstance(t, msgspec.inspect.UnionType):
        for u in t.types:
            found = _struct_of(u)
            if found is not None:
                return found
    return None


def _is_table_list(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return _is_table_list(t.type)
    return isinstance(t, msgspec.inspect.ListType) and _struct_of(t.item_type) is not None


def check_key(key: str) -> None:
    """Raise ``GridError`` unless ``key`` names a field of the live config types."""
    section, *rest = key.split(".")
    if not rest:
        raise GridError(f"{key}: a whole section cannot be swept; name a field in it")
    st: msgspec.inspect.StructType | None = msgspec.inspect.type_info(_section_types()[section])  # type: ignore[assignment]
    where = f"[{section}]"
    for i, part in enumerate(rest):
        if st is None:
            raise GridError(f"{key}: {where} is not a table, it has no field {part!r}")
        fields = {f.encode_name: f for f in st.fields}
        if part not in fields:
            raise GridError(f"{key}: {where} has no field {part!r} (fields: {', '.join(fields)})")
        if _is_table_list(fields[part].type) and i == len(rest) - 1:
            raise GridError(f"{key}: a list of tables ([[{section}.{part}]]) cannot be swept")
        st = _struct_of(fields[part].type)
        where = f"[{section}.{'.'.join(rest[: i + 1])}]"


def full_key(key: str) -> str:
    return key if key.split(".", 1)[0] in SECTIONS else f"{DEFAULT_SECTION}.{key}"


def read_grid(path: str | Path) -> Grid:
    """Parse and check ``GRID.toml``; raise ``GridError`` naming the file and the key."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise GridError(f"{path}: no such grid file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GridError(f"{path}: {exc}") from None
    keys: list[str] = []
    values: list[tuple[Any, ...]] = []
    for raw, v in _leaves(doc):
        key = full_key(raw)
        if key in keys:
            raise GridError(f"{path}: {raw} names {key}, which the grid already sweeps")
        if not isinstance(v, list) or not v:
            raise GridError(f"{path}: {raw} must be a non-empty list of values, got {v!r}")
        try:
            check_key(key)
        except GridError as exc:
            raise GridError(f"{path}: {exc}") from None
        seen = [json.dumps(x, sort_keys=True, default=str) for x in v]
        if len(set(seen)) != len(seen):
            raise GridError(f"{path}: {raw} lists a value twice: {v!r}")
        keys.append(key)
        values.append(tuple(v))
    grid = Grid(tuple(keys), tuple(values))
    if grid.size() > MAX_POINTS:
        raise GridError(f"{path}: {grid.size()} points, more than {MAX_POINTS}")
    return grid


def apply(doc: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """A copy of the parsed config ``doc`` with each dotted key of ``point`` set."""
    out = copy.deepcopy(doc)
    for key, value in point.items():
        *tables, leaf = key.split(".")
        node = out
        for i, t in enumerate(tables):
            nxt = node.setdefault(t, {})
            if not isinstance(nxt, dict):
                where = ".".join(tables[: i + 1])
                raise GridError(f"{key}: the config's {where} is a value, not a table")
            node = nxt
        node[leaf] = copy.deepcopy(value)
    return out
