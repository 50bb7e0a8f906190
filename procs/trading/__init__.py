"""Execution: strategy, sizing, pre-trade risk, breaker, order state, positions, journal.

Every module here is pure logic except ``journal.py`` (the SQLite storage layer) and the
``killswitch.py`` CLI, so the live process and the backtester call the very same functions.

Errors (defined in ``model.py``)::

    ExecutionError
    ├── IllegalTransitionError   an order was driven through a transition the machine forbids
    ├── UnknownOrderError        an event names a clientId the tracker never issued
    └── JournalError             the journal is unreadable or its schema is not ours
"""

from __future__ import annotations
