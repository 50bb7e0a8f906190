"""``bitrader backtest``: the live feature engine, scorer and execution process over recorded
captures, on a simulated clock, with the shared matcher (``procs.matching``) as the venue."""
