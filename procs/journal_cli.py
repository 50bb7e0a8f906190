"""``bitrader audit verify|override`` and ``bitrader journal backup|restore``.

The audit key is the keystore's (``--keystore``, passphrase from
``BITRADER_KEYSTORE_PASSPHRASE`` or a prompt) or ``audit.key`` beside the journal
(``--key-file``). Exit codes: 0 good, 1 broken or failed, 2 no journal, 78 a bad key.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Final

from procs._files import private_umask
from procs.keystore.store import PASSPHRASE_ENV, KeyFileError, KeyStoreError, load
from procs.trading.audit import AuditChain, AuditReport, Checkpoints, verify, write_override
from procs.trading.backup import backup_journal, backup_name, set_aside
from procs.trading.intent_log import log_path
from procs.trading.journal import SCHEMA_VERSION, Journal
from procs.trading.journal_schema import columns_for
from procs.trading.keys import audit_key_file, read_audit_key_file

EXIT_CONFIG: Final = 78
SHOWN: Final = 20


def _default_journal() -> Path:
    run_dir = os.environ.get("BITRADER_RUN_DIR") or str(Path("run") / "demo")
    return Path(run_dir) / "execution.sqlite"


def _key(args: argparse.Namespace, journal: Path) -> bytes:
    if args.keystore:
        phrase = os.environ.get(PASSPHRASE_ENV) or getpass.getpass("keystore passphrase: ")
        data = load(args.keystore, phrase)
        if not data.audit_key:
            raise KeyFileError(f"{args.keystore} holds no audit key")
        return bytes.fromhex(data.audit_key)
    return read_audit_key_file(args.key_file or audit_key_file(journal), create=False)


def check(journal: Path, key: bytes) -> AuditReport:
    """Verify ``journal`` read-only (nothing is written, no checkpoint moves)."""
    with closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True, isolation_level=None)) as c:
        row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else SCHEMA_VERSION
        columns = columns_for(version)  # an older journal (not yet migrated) lacks newer tables
        return verify(c, AuditChain(key), columns, Checkpoints(journal, AuditChain(key)))


def print_report(journal: Path, r: AuditReport, as_json: bool) -> None:
    if as_json:
        doc = {
            "journal": str(journal), "ok": r.ok, "rows": r.rows, "head_id": r.head_id,
            "checkpoints": r.checkpoints, "fingerprint": r.fingerprint(),
            "problems": [{"audit_id": p.audit_id, "detail": p.detail} for p in r.problems],
            "accepted": [p.detail for p in r.accepted], "reseals": r.resealed,
        }  # fmt: skip
        print(json.dumps(doc, indent=2, default=str))
        return
    if r.ok:
        print(
            f"{journal}: OK: {r.rows} audited rows, chain intact, head id {r.head_id}"
            f" anchored by {r.checkpoints} signed checkpoint(s)"
        )
    else:
        print(f"{journal}: BROKEN: {len(r.problems)} problem(s) (fingerprint {r.fingerprint()})")
        for p in r.problems[:SHOWN]:
            print(f"  audit id {p.audit_id if p.audit_id is not None else '-':>6}  {p.detail}")
        if len(r.problems) > SHOWN:
            print(f"  … and {len(r.problems) - SHOWN} more (--json lists them all)")
    for rs in r.resealed:
        print(f"  reseal at audit id {rs['audit_id']} by {rs.get('by')!r}: {rs.get('reason')!r}")
    if r.accepted:
        print(f"  {len(r.accepted)} earlier problem(s) accepted by those reseals")


def _verify(args: argparse.Namespace) -> int:
    report = check(args.journal, _key(args, args.journal))
    print_report(args.journal, report, args.json)
    return 0 if report.ok else 1


def _override(args: argparse.Namespace) -> int:
    report = check(args.journal, _key(args, args.journal))
    print_report(args.journal, report, False)
    if report.ok:
        print("nothing to override")
        return 0
    who = os.environ.get("USER") or str(os.getuid())
    path = write_override(args.journal, report, args.reason, who)
    print(
        f"override written: {path}. On its next start execution accepts exactly these"
        f" {len(report.problems)} problem(s), journals a reseal row with your reason, and"
        " deletes the override (any other problem is still refused)."
    )
    return 0


def _backup(args: argparse.Namespace) -> int:
    dest = args.dest
    if dest.is_dir() or str(dest).endswith("/"):
        dest = dest / backup_name(time.time_ns())
    out = backup_journal(args.journal, dest, AuditChain(_key(args, args.journal)))
    print(f"backup written: {out} (and {out}.checkpoint)")
    logged = Path(log_path(args.journal))
    if logged.exists() and logged.stat().st_size:
        print(
            f"note: {logged} holds intents or fills whose journal rows are not written yet"
            " (execution is running, or stopped before writing them: its next start writes"
            " them); the backup does not have them",
            file=sys.stderr,
        )
    return 0


def _restore(args: argparse.Namespace) -> int:
    key = _key(args, args.journal)
    report = check(args.backup, key)
    print_report(args.backup, report, False)
    if not report.ok:
        print("restore refused: the backup does not verify", file=sys.stderr)
        return 1
    tag = f"pre-restore-{time.strftime('%Y%m%dT%H%M%S')}"
    moved = set_aside(args.journal, tag)
    moved += Checkpoints(args.journal, AuditChain(key)).archive(tag)
    backup_journal(args.backup, args.journal, None)
    shutil.copyfile(f"{args.backup}.checkpoint", f"{args.journal}.checkpoint")
    os.chmod(f"{args.journal}.checkpoint", 0o600)
    journal = Journal.open(args.journal, key)
    try:
        if not journal.verify_audit().ok:
            print("restore failed: the restored journal does not verify", file=sys.stderr)
            return 1
        journal.record_event(
            "restore",
            {"backup": str(args.backup), "head_id": report.head_id, "set_aside": tag},
        )
    finally:
        journal.close()
    print(f"restored {args.backup} -> {args.journal}; previous files kept as *.{tag}")
    for p in moved:
        print(f"  {p}")
    return 0


def _parser(prog: str, actions: list[str]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"bitrader {prog}")
    ap.add_argument("action", choices=actions)
    ap.add_argument("--keystore", type=Path, help="take the audit key from this keystore")
    ap.add_argument("--key-file", type=Path, help="audit key file (default: audit.key beside)")
    return ap


def _run(
    action: str, handler: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    private_umask()  # a reader may create the WAL's -shm file: keep it private too
    journal = getattr(args, "backup", None) or args.journal
    if not Path(journal).exists():
        print(f"{action}: no journal at {journal}", file=sys.stderr)
        return 2
    try:
        rc = handler(args)
    except KeyFileError as exc:
        print(f"{action}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (KeyStoreError, OSError, sqlite3.Error) as exc:
        print(f"{action}: {exc}", file=sys.stderr)
        return 1
    return rc


def main_audit(argv: list[str]) -> int:
    """``bitrader audit verify [JOURNAL] [--json]`` | ``audit override [JOURNAL] --reason``."""
    ap = _parser("audit", ["verify", "override"])
    ap.add_argument("journal", type=Path, nargs="?", default=_default_journal())
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--reason", default="", help="override: why this journal may be traded on")
    args = ap.parse_args(argv)
    if args.action == "override" and not args.reason.strip():
        ap.error("override needs --reason")
    return _run(f"audit {args.action}", _verify if args.action == "verify" else _override, args)


def main_journal(argv: list[str]) -> int:
    """``bitrader journal backup [JOURNAL] DEST`` | ``journal restore BACKUP [JOURNAL]``."""
    ap = _parser("journal", ["backup", "restore"])
    ap.add_argument(
        "paths", type=Path, nargs="+", help="backup: [JOURNAL] DEST; restore: BACKUP [JOURNAL]"
    )
    args = ap.parse_args(argv)
    paths = list(args.paths)
    if len(paths) > 2:
        ap.error("at most two paths")
    if args.action == "backup":
        args.journal, args.dest = paths if len(paths) == 2 else [_default_journal(), *paths]
        return _run("journal backup", _backup, args)
    args.backup = paths[0]
    args.journal = paths[1] if len(paths) == 2 else _default_journal()
    return _run("journal restore", _restore, args)
