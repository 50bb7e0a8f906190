"""``bitrader monitor``: Prometheus config, recording and alert rules, Grafana dashboards, and a
local Prometheus run against the group.

``config`` writes ``prometheus.yml`` (targets from the group config's ``metrics_port``s) and the
rule files; ``dashboards`` writes the Grafana provisioning JSON; ``up``/``down`` run Debian's
``prometheus`` on them. See docs/monitoring.md.
"""
