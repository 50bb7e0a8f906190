"""The execution process's operator commands on its control socket (``Runtime.add_command``):
``kill_switch``, ``breaker_reset`` and ``reconcile_adopt``. Each is logged and journaled as a
``risk_events`` row (``operator.<command>``); the reply is the acknowledgement. ``audit`` lets
another program of the group (the dashboard: logins, logouts, kill-switch clicks) append an
``audit_record`` event to the keyed audit chain; like every command it must be signed.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Protocol, cast

from ipc.messages import Value
from procs.trading.breaker import Breaker, BreakerTransition
from procs.trading.journal import Journal
from procs.trading.killswitch import KillSwitch
from procs.trading.orders import OrderTracker
from procs.trading.reconciler import Reconciler
from procs.trading.risk import Refusal, RefusalReason

log = logging.getLogger(__name__)

_TRUE: Final = frozenset({"1", "true", "on", "yes"})
_FALSE: Final = frozenset({"0", "false", "off", "no"})
AUDIT_EVENT: Final = "audit_record"  # the journal's event kind for ``audit`` requests
AUDIT_KINDS: Final = frozenset(
    {
        "login_ok",
        "login_failed",
        "login_rate_limited",
        "login_refused",
        "logout",
        "killswitch",
        "killswitch_refused",
    }
)
AUDIT_MAX_FIELDS: Final = 16
AUDIT_MAX_KEY: Final = 32
AUDIT_MAX_TEXT: Final = 400
AUDIT_MAX_BYTES: Final = 4096  # the whole ``fields`` JSON
AUDIT_RECENT: Final = 1024  # recent records remembered to spot a resend


def validate_audit(args: dict[str, str]) -> dict[str, object]:
    """The journal body for an ``audit`` request, or ``ValueError`` saying what is wrong.

    ``{"kind": one of AUDIT_KINDS, "source": NAME, "fields": JSON object of at most
    AUDIT_MAX_FIELDS short keys -> str/int/float/bool/null, "seq": N, "ts_ns": N}``.
    """
    kind = args.get("kind", "")
    if kind not in AUDIT_KINDS:
        raise ValueError(f"audit: unknown kind {kind[:40]!r} (known: {sorted(AUDIT_KINDS)})")
    source = args.get("source", "")
    if not source or len(source) > AUDIT_MAX_KEY or not source.isprintable():
        raise ValueError(f"audit: source must be 1..{AUDIT_MAX_KEY} printable characters")
    text = args.get("fields", "{}")
    if len(text.encode()) > AUDIT_MAX_BYTES:
        raise ValueError(f"audit: fields over {AUDIT_MAX_BYTES} bytes")
    try:
        fields = json.loads(text)
    except ValueError:
        raise ValueError("audit: fields is not JSON") from None
    _check_fields(fields)
    body: dict[str, object] = {"kind": kind, "source": source, "fields": fields}
    for name in ("seq", "ts_ns"):  # the sender's numbering and clock (duplicates show)
        word = args.get(name, "")
        if word:
            if not word.isdigit() or len(word) > 20:
                raise ValueError(f"audit: {name} must be a non-negative integer")
            body[name] = int(word)
    extra = set(args) - {"kind", "source", "fields", "seq", "ts_ns"}
    if extra:
        raise ValueError(f"audit: unknown arguments {sorted(extra)[:5]}")
    return body


def _check_fields(fields: object) -> None:
    if not isinstance(fields, dict) or len(fields) > AUDIT_MAX_FIELDS:
        raise ValueError(f"audit: fields must be an object of at most {AUDIT_MAX_FIELDS} keys")
    for k, v in fields.items():
        if not k or len(k) > AUDIT_MAX_KEY or not k.isidentifier():
            raise ValueError(f"audit: bad field name {k[:40]!r}")
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise ValueError(f"audit: field {k} must be a string, number, boolean or null")
        if isinstance(v, str) and len(v) > AUDIT_MAX_TEXT:
            raise ValueError(f"audit: field {k} over {AUDIT_MAX_TEXT} characters")


def journal_control(journal: Journal) -> Callable[[str, dict[str, str], bool, str], None]:
    """``ControlDispatcher.on_control`` for execution: every authenticated state-changing
    request as a ``control`` event; an accepted ``audit`` is its own ``audit_record`` row."""

    def on_control(cmd: str, args: dict[str, str], ok: bool, error: str) -> None:
        if cmd == "audit" and ok:
            return
        journal.record_event("control", {"cmd": cmd, "args": args, "ok": ok, "error": error})

    return on_control


class OperatorHost(Protocol):
    """What the commands need of the process (``ExecutionProc``)."""

    killswitch: KillSwitch
    breaker: Breaker
    journal: Journal
    tracker: OrderTracker
    reconciler: Reconciler

    @property
    def state(self) -> str: ...

    def cancel_all(self, now: int, reason: str) -> None: ...

    def on_breaker(self, t: BreakerTransition | None) -> None: ...


class OperatorCommands:
    """Handlers for ``Runtime.add_command``; they run on the process's own thread."""

    def __init__(self, host: OperatorHost, clock: Callable[[], int]) -> None:
        self._h = host
        self._clock = clock
        # (source, seq, ts_ns) -> audit id of recent ``audit`` records: a resend after a lost
        # answer is acknowledged again, not journaled twice
        self._recent: OrderedDict[tuple[object, ...], int] = OrderedDict()

    def register(
        self, add: Callable[[str, Callable[[dict[str, str]], dict[str, Value]]], None]
    ) -> None:
        add("kill_switch", self.kill_switch)
        add("breaker_reset", self.breaker_reset)
        add("reconcile_adopt", self.reconcile_adopt)
        add("audit", self.audit)

    def _audit(self, what: str, detail: str, now: int) -> None:
        reason = cast(RefusalReason, f"operator.{what}")  # journaled beside refusals
        self._h.journal.record_refusal(Refusal(reason, detail, "", "", now))

    def kill_switch(self, args: dict[str, str]) -> dict[str, Value]:
        """``{"on": "1"|"0", "reason": TEXT, "source": TEXT}`` → the switch, persisted if the
        disk allows; resting orders are cancelled at once when it goes on."""
        word = args.get("on", "").lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"kill_switch needs on=1 or on=0, got {args.get('on')!r}")
        on = word in _TRUE
        h, now = self._h, self._clock()
        source = args.get("source", "ctl")[:32] or "ctl"
        reason = args.get("reason", "")[:400] or ("operator kill switch" if on else "cleared")
        changed = h.killswitch.set(on, reason, source, now)
        ks = h.killswitch
        log.warning(
            "kill switch on=%s changed=%s persisted=%s source=%s reason=%s",
            on,
            changed is not None,
            ks.persisted,
            source,
            reason,
        )
        if on:
            h.cancel_all(now, "kill switch")
        self._audit("kill_switch", f"on={int(on)} source={source} persisted={int(ks.persisted)} "
                    f"reason={reason}", now)  # fmt: skip
        return {
            "on": int(on),
            "changed": int(changed is not None),
            "persisted": int(ks.persisted),
            "persist_error": ks.persist_error,
            "state": h.state,
            "open_orders": len(h.tracker.open_orders()),
        }

    def breaker_reset(self, args: dict[str, str]) -> dict[str, Value]:
        """``{"operator": NAME, "reason": TEXT}`` → the breaker back to ACTIVE (journaled)."""
        operator = args.get("operator", "")[:64]
        if not operator:
            raise ValueError("breaker_reset needs operator=NAME (who resets, for the journal)")
        h, now = self._h, self._clock()
        reason = args.get("reason", "")[:400]
        old = h.breaker.state
        t = h.breaker.reset(f"{operator}: {reason}" if reason else operator, now)
        h.on_breaker(t)
        log.warning("breaker reset by operator=%s old=%s reason=%s", operator, old.name, reason)
        self._audit("breaker_reset", f"old={old.name} by={operator} reason={reason}", now)
        return {"old": old.name, "new": h.breaker.state.name, "state": h.state}

    def reconcile_adopt(self, args: dict[str, str]) -> dict[str, Value]:
        """``{"operator": NAME}`` → the venue's positions and balance booked as the truth (the
        way out of a reconciliation stuck on venue state loss; refused while orders are open)."""
        operator = args.get("operator", "")[:64]
        if not operator:
            raise ValueError("reconcile_adopt needs operator=NAME (who decides, for the journal)")
        h, now = self._h, self._clock()
        done = h.reconciler.adopt(now)  # ValueError when refused
        self._audit("reconcile_adopt", f"by={operator}: " + "; ".join(done), now)
        return {"adopted": "; ".join(done), "state": h.state}

    def audit(self, args: dict[str, str]) -> dict[str, Value]:
        """``{"kind", "source", "fields", "seq", "ts_ns"}`` (``validate_audit``) → one
        ``audit_record`` event in the keyed chain, anchored; the reply carries its audit id.
        The same record again (source, seq and time: a resend after a lost answer) is
        acknowledged with ``duplicate=1`` and not journaled twice."""
        body = validate_audit(args)
        key = (body["source"], body.get("seq"), body.get("ts_ns"))
        if "seq" in body and key in self._recent:
            return {"audit_id": self._recent[key], "duplicate": 1}
        journal = self._h.journal
        journal.record_event(AUDIT_EVENT, body, self._clock())
        audit_id, _ = journal.head
        if "seq" in body:
            self._recent[key] = audit_id
            while len(self._recent) > AUDIT_RECENT:
                self._recent.popitem(last=False)
        log.info("audit record kind=%s source=%s audit_id=%d", body["kind"], body["source"],
                 audit_id)  # fmt: skip
        return {"audit_id": audit_id}
