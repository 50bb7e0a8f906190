"""Config loader: template expansion, env defaults, errors naming file and field, config check."""

from __future__ import annotations

import os
import sys
import textwrap
import types
from pathlib import Path

import msgspec
import pytest

from procs import _config
from procs._config import (
    EXIT_CONFIG,
    ConfigError,
    Env,
    RuntimeConfig,
    check_file,
    decode_section,
    load_env,
    load_section,
    main_cli,
)
from tests.helpers.dummy_proc import DummyConfig

GOOD = """
[dummy]
label = "{ns}-label"
fault_after_steps = 3

[dummy.runtime]
pub_endpoint = "ipc://{run_dir}/dummy.pub"
control_endpoint = "ipc://{run_dir}/dummy.ctl"
cpus = [0]

[other]
anything = 1
"""


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("BITRADER_RUN_DIR", "/tmp/brun")
    monkeypatch.setenv("BITRADER_NS", "testns")


def _write(tmp_path: Path, text: str, name: str = "dev.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_section_expands_templates_from_env(tmp_path, env):
    path = _write(tmp_path, GOOD)

    cfg = load_section(path, "dummy", DummyConfig)

    assert cfg.label == "testns-label"
    assert cfg.fault_after_steps == 3
    assert cfg.runtime.pub_endpoint == "ipc:///tmp/brun/dummy.pub"
    assert cfg.runtime.cpus == [0]
    assert cfg.runtime.waiter == "block"


def test_load_section_argv_form_takes_the_path(tmp_path, env):
    path = _write(tmp_path, GOOD)

    cfg = load_section([str(path)], "dummy", DummyConfig)

    assert cfg.fault_after_steps == 3


def test_load_section_none_reads_sys_argv(tmp_path, env, monkeypatch):
    path = _write(tmp_path, GOOD)
    monkeypatch.setattr("sys.argv", ["prog", str(path)])

    cfg = load_section(None, "dummy", DummyConfig)

    assert cfg.fault_after_steps == 3


def test_load_env_defaults_are_run_dir_and_file_stem():
    got = load_env("configs/paper.toml", environ={})

    assert got == Env(run_dir=os.path.abspath("./run"), ns="paper")


def test_config_is_frozen(tmp_path, env):
    cfg = load_section(_write(tmp_path, GOOD), "dummy", DummyConfig)

    with pytest.raises(AttributeError):
        cfg.label = "x"  # type: ignore[misc]  # the point of the test


BAD_CASES = [
    ("[dummy]\nbogus = 1\n", "unknown field `bogus`", "$.dummy"),
    ('[dummy]\nfault_after_steps = "x"\n', "Expected `int`", "$.dummy.fault_after_steps"),
    ("[dummy]\nfault_after_steps = -1\n", ">= 0", "$.dummy.fault_after_steps"),
    ("[dummy.runtime]\ncpu = [0]\n", "unknown field `cpu`", "$.dummy.runtime"),
    ('[dummy.runtime]\nwaiter = "busy"\n', "Invalid enum value 'busy'", "$.dummy.runtime.waiter"),
    ("[dummy.runtime]\nheartbeat_s = 0\n", "> 0.0", "$.dummy.runtime.heartbeat_s"),
    ("[dummy.runtime]\nmetrics_port = 70000\n", "<= 65535", "$.dummy.runtime.metrics_port"),
    ("[dummy.runtime]\ncpus = [-1]\n", ">= 0", "$.dummy.runtime.cpus[0]"),
]


def _bad_doc(extra: str) -> str:
    # a valid file with one bad line merged into the named table
    base = {
        "[dummy]": "[dummy]\n",
        "[dummy.runtime]": (
            '[dummy.runtime]\npub_endpoint = "ipc:///tmp/x/d.pub"\n'
            'control_endpoint = "ipc:///tmp/x/d.ctl"\n'
        ),
    }
    table, _, line = extra.partition("\n")
    base[table] += line
    return base["[dummy]"] + base["[dummy.runtime]"]


@pytest.mark.parametrize(("extra", "what", "field"), BAD_CASES)
def test_decode_section_bad_field_names_file_and_path(tmp_path, env, extra, what, field):
    path = _write(tmp_path, _bad_doc(extra))
    doc = _config.read_toml(path)

    with pytest.raises(ConfigError) as info:
        decode_section(doc, "dummy", DummyConfig, path=path, env=load_env(path))

    message = str(info.value)
    assert str(path) in message
    assert what in message
    assert f"`{field}`" in message


@pytest.mark.parametrize(("extra", "what", "field"), BAD_CASES)
def test_load_section_bad_field_exits_78(tmp_path, env, extra, what, field):
    path = _write(tmp_path, _bad_doc(extra))

    with pytest.raises(SystemExit) as info:
        load_section(path, "dummy", DummyConfig)

    assert info.value.code == EXIT_CONFIG


def test_load_section_missing_required_field_names_it(tmp_path, env):
    path = _write(tmp_path, "[dummy.runtime]\ncontrol_endpoint = 'ipc:///tmp/x/d.ctl'\n")

    with pytest.raises(ConfigError, match="missing required field `pub_endpoint`"):
        decode_section(_config.read_toml(path), "dummy", DummyConfig, path=path, env=Env("r", "n"))


def test_read_toml_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError, match=f"file={path}: no such file"):
        _config.read_toml(path)


def test_read_toml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "[dummy\nx = 1\n")

    with pytest.raises(ConfigError, match=rf"file={path}: .*line 1"):
        _config.read_toml(path)


@pytest.mark.parametrize(
    "text",
    ["[dummy]\n", "[dummy]\nruntime = 3\n", "dummy = 1\n", "[other]\nx = 1\n"],
)
def test_load_section_missing_or_bad_section_exits_78(tmp_path, env, text):
    with pytest.raises(SystemExit) as info:
        load_section(_write(tmp_path, text), "dummy", DummyConfig)

    assert info.value.code == EXIT_CONFIG


def test_load_section_missing_file_exits_78(tmp_path):
    with pytest.raises(SystemExit) as info:
        load_section(tmp_path / "nope.toml", "dummy", DummyConfig)

    assert info.value.code == EXIT_CONFIG


def test_load_section_argv_without_path_exits_78():
    with pytest.raises(SystemExit) as info:
        load_section([], "dummy", DummyConfig)

    assert info.value.code == EXIT_CONFIG


@pytest.mark.parametrize(
    ("pub", "ctl", "what"),
    [
        ("ipc:///tmp/a", "ipc:///tmp/a", "must differ"),
        ("tcp://8.8.8.8:1", "ipc:///tmp/b", "pub_endpoint: tcp host must be loopback"),
        ("ipc:///tmp/a", "ipc://{run_dir}/b", "control_endpoint: endpoint has an unexpanded"),
    ],
)
def test_runtime_config_bad_endpoints_raise(pub, ctl, what):
    with pytest.raises(msgspec.ValidationError, match=what):
        msgspec.convert({"pub_endpoint": pub, "control_endpoint": ctl}, RuntimeConfig)


def test_runtime_config_sched_slice_defaults_to_the_kernels_and_refuses_negative():
    ends = {"pub_endpoint": "ipc:///tmp/a", "control_endpoint": "ipc:///tmp/b"}

    assert msgspec.convert(ends, RuntimeConfig).sched_slice_us == 0
    with pytest.raises(
        msgspec.ValidationError, match=r"Expected `int` >= 0 - at `\$.sched_slice_us`"
    ):
        msgspec.convert({**ends, "sched_slice_us": -1}, RuntimeConfig)


@pytest.fixture
def dummy_registered(monkeypatch):
    monkeypatch.setitem(_config.SECTIONS, "dummy", "tests.helpers.dummy_proc:DummyConfig")


def test_main_cli_check_valid_file_returns_0(tmp_path, env, dummy_registered):
    path = _write(tmp_path, GOOD)

    assert main_cli(["check", str(path)]) == 0


def test_main_cli_check_bad_field_returns_78(tmp_path, env, dummy_registered):
    path = _write(tmp_path, _bad_doc("[dummy]\nbogus = 1\n"))

    assert main_cli(["check", str(path)]) == EXIT_CONFIG


def test_check_file_collects_every_section_error(tmp_path, env, monkeypatch):
    monkeypatch.setitem(_config.SECTIONS, "dummy", "tests.helpers.dummy_proc:DummyConfig")
    monkeypatch.setitem(_config.SECTIONS, "dummy2", "tests.helpers.dummy_proc:DummyConfig")
    text = _bad_doc("[dummy]\nbogus = 1\n") + "[dummy2]\n"

    errors = check_file(_write(tmp_path, text))

    assert len(errors) == 2
    assert "`$.dummy`" in errors[0]
    assert "$.dummy2" in errors[1]


def test_check_file_skips_sections_without_a_type(tmp_path, env, dummy_registered):
    assert check_file(_write(tmp_path, GOOD)) == []  # [other]: no procs.other module


def test_check_file_named_section_without_type_is_an_error(tmp_path, env):
    errors = check_file(_write(tmp_path, GOOD), ["other"])

    assert errors == [f"config error file={tmp_path / 'dev.toml'}: no type registered for [other]"]


def test_check_file_registered_type_that_cannot_import_is_an_error(tmp_path, env, monkeypatch):
    monkeypatch.setitem(_config.SECTIONS, "dummy", "tests.helpers.no_such_module:X")

    errors = check_file(_write(tmp_path, GOOD), ["dummy"])

    assert len(errors) == 1
    assert "cannot import tests.helpers.no_such_module" in errors[0]


def test_main_cli_missing_file_returns_78(tmp_path):
    assert main_cli(["check", str(tmp_path / "nope.toml")]) == EXIT_CONFIG


@pytest.mark.parametrize("argv", [[], ["check"], ["lint", "x.toml"]])
def test_main_cli_usage_error_returns_2(argv):
    assert main_cli(argv) == 2


def test_runtime_config_remote_endpoint_allowed_when_asked():
    cfg = msgspec.convert(
        {
            "pub_endpoint": "tcp://10.0.0.1:5000",
            "control_endpoint": "ipc:///tmp/b",
            "allow_remote_endpoints": True,
            "allow_ips": ["10.0.0.2"],  # beyond loopback: an allowlist and a token are required
            "control_token_file": "/tmp/control.token",
        },
        RuntimeConfig,
    )

    assert cfg.pub_endpoint == "tcp://10.0.0.1:5000"


def test_section_type_found_by_convention_in_package_config_module(monkeypatch):
    package, module = types.ModuleType("procs.zz_fake"), types.ModuleType("procs.zz_fake.config")
    module.ZzFakeConfig = DummyConfig  # type: ignore[attr-defined]  # a fake module
    monkeypatch.setitem(sys.modules, "procs.zz_fake", package)
    monkeypatch.setitem(sys.modules, "procs.zz_fake.config", module)

    assert _config._section_type("zz_fake") is DummyConfig


def test_section_type_unknown_program_is_none():
    assert _config._section_type("no_such_program") is None


class _WithTemplateDefault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    ring: str = "{ns}.ingest.md.book"
    pub: str = "ipc://{run_dir}/ingest.pub"


def test_decode_section_expands_templates_in_defaults():
    doc = {"s": {"name": "{ns}-x"}}

    got = decode_section(doc, "s", _WithTemplateDefault, path="f.toml", env=Env("/r", "n1"))

    assert got == _WithTemplateDefault(
        name="n1-x", ring="n1.ingest.md.book", pub="ipc:///r/ingest.pub"
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"metrics_host": "0.0.0.0"}, "metrics_host beyond loopback need allow_ips"),
        (
            {"control_endpoint": "tcp://10.0.0.5:7001", "allow_remote_endpoints": True},
            "control_endpoint beyond loopback need",
        ),
        (
            {"metrics_host": "0.0.0.0", "allow_ips": ["10.0.0.9"]},
            "need allow_ips and control_token_file",
        ),
        ({"allow_ips": ["not-an-ip"]}, "not an IP address"),
    ],
)
def test_runtime_config_beyond_loopback_needs_allowlist_and_token(extra, problem):
    raw = {"pub_endpoint": "ipc:///tmp/x.pub", "control_endpoint": "ipc:///tmp/x.ctl", **extra}

    with pytest.raises(msgspec.ValidationError, match=problem):
        msgspec.convert(raw, RuntimeConfig)


def test_runtime_config_beyond_loopback_with_allowlist_and_token_is_accepted():
    raw = {
        "pub_endpoint": "ipc:///tmp/x.pub",
        "control_endpoint": "tcp://10.0.0.5:7001",
        "allow_remote_endpoints": True,
        "metrics_host": "0.0.0.0",
        "allow_ips": ["10.0.0.9"],
        "control_token_file": "/etc/bitrader/control.token",
    }

    cfg = msgspec.convert(raw, RuntimeConfig)

    assert cfg.token_file == "/etc/bitrader/control.token"
    assert (
        msgspec.convert(
            {"pub_endpoint": "ipc:///r/a.pub", "control_endpoint": "ipc:///r/a.ctl"}, RuntimeConfig
        ).token_file
        == "/r/control.token"
    )
