"""Execution process: wiring, control socket, start-up guard and reload around ``procs.trading``."""
