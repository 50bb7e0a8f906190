"""``bitrader monitor config|dashboards|up|down``: see procs/monitor/__init__.py.

Exit codes: 0 done, 1 Prometheus failed to start or stop, 78 bad configuration.
"""

from __future__ import annotations

import argparse
import sys

from procs._config import EXIT_CONFIG, ConfigError
from procs.monitor.rules import RuleParams
from procs.monitor.targets import DEFAULT_INTERVAL_S, PromSettings
from procs.monitor.writer import write_config

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bitrader monitor", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config", help="write prometheus.yml and rule files for a group config")
    c.add_argument("config", help="the group config (e.g. configs/demo.toml)")
    c.add_argument("--out", default="configs/prometheus", help="directory to write into")
    c.add_argument("--scrape-interval-s", type=float, default=DEFAULT_INTERVAL_S)
    c.add_argument("--for-scale", type=float, default=1.0, help="multiplies every alert's for:")
    d = sub.add_parser("dashboards", help="write the Grafana dashboards and provisioning files")
    d.add_argument("--out", default="configs/grafana", help="directory to write into")
    u = sub.add_parser("up", help="run Prometheus against the running group")
    u.add_argument("config", help="the group config the group runs with")
    u.add_argument("--port", type=int, default=9090, help="Prometheus's listen port")
    u.add_argument("--dir", default="", help="state directory (default: <run_dir>/prometheus)")
    u.add_argument("--scrape-interval-s", type=float, default=DEFAULT_INTERVAL_S)
    u.add_argument("--for-scale", type=float, default=1.0)
    dn = sub.add_parser("down", help="stop the Prometheus that `monitor up` started")
    dn.add_argument("config", help="the group config")
    dn.add_argument("--dir", default="", help="state directory (as given to up)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``monitor`` subcommand; return its exit code."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.cmd == "config":
            s = PromSettings(args.scrape_interval_s, args.scrape_interval_s)
            params = RuleParams.for_scrapes(s.scrape_interval_s, args.for_scale)
            for path in write_config(args.config, args.out, s, params):
                print(f"wrote {path}")
            return 0
        if args.cmd == "dashboards":
            from procs.monitor.dashboards import write_grafana

            for path in write_grafana(args.out):
                print(f"wrote {path}")
            return 0
        from procs.monitor.server import down, up

        return up(args) if args.cmd == "up" else down(args)
    except ConfigError as exc:
        print(f"bitrader monitor: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
