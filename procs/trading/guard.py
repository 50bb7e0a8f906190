"""Execution's start-up trust gate: open the journal with its key, verify it, or refuse.

A journal whose audit chain does not verify is not traded on: ``open_verified`` logs every
problem and exits 78, unless an operator wrote an override for exactly these problems
(``bitrader audit override``); then it journals a ``reseal`` row with the reason and goes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from procs._config import EXIT_CONFIG
from procs.keystore.store import KeyStoreError, Secrets
from procs.trading.audit import AuditChain, override_path, read_override, reseal_body
from procs.trading.backup import BackupTask
from procs.trading.config import ExecutionConfig
from procs.trading.intent_log import Sync
from procs.trading.journal import Journal
from procs.trading.journal_check import check_path
from procs.trading.keys import audit_key
from procs.trading.model import JournalError

log = logging.getLogger(__name__)

SHOWN_PROBLEMS = 10


def _refuse(msg: str, *args: object) -> SystemExit:
    log.error(msg, *args)
    return SystemExit(EXIT_CONFIG)


RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})  # nothing on them survives a host's crash
MOUNTINFO = "/proc/self/mountinfo"


def intent_sync(config: ExecutionConfig, mountinfo: str = MOUNTINFO) -> Sync:
    """When the intent log syncs an order's line: before it leaves, or right after.

    ``auto``: before in live mode; in paper mode after (its orders rest in the process: a
    host's crash loses them whatever the journal holds), unless the journal is in memory
    (tmpfs): there the sync protects nothing either and costs ~µs, so it is done inline and
    no thread runs. ``mountinfo``: the mount table read (tests give their own).
    """
    mode = config.journal.intent_sync
    if mode != "auto":
        return mode
    in_memory = filesystem_of(config.journal_path, mountinfo) in RAM_FILESYSTEMS
    return "before_send" if config.mode == "live" or in_memory else "after_send"


def filesystem_of(path: str, mountinfo: str = MOUNTINFO) -> str:
    """The type of the file system ``path`` is on (its nearest mount point), "" if unknown."""
    where = os.path.realpath(path)
    best, kind = "", ""
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not after:
            continue
        point = parts[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the last of equals: mounted over the others
            best, kind = point, after.split()[0]
    return kind


def open_verified(config: ExecutionConfig, secrets: Secrets | None) -> tuple[Journal, bytes]:
    """The journal, verified (or resealed by an operator's override), and its audit key.

    Raises ``SystemExit(EXIT_CONFIG)`` on a bad key, an unmigratable or a broken journal.
    """
    path = config.journal_path
    try:
        check_path(Path(path))  # an unusable journal path is named before the key beside it
        key = audit_key(config.venue, path, secrets)
        sync = intent_sync(config)  # (reads the mount table: once)
        journal = Journal.open(
            path,
            key,
            checkpoint_keep=config.journal.checkpoint_keep,
            checkpoint_s=config.journal.checkpoint_s,
            intent_sync=sync,
        )
    except KeyStoreError as exc:
        raise _refuse("config error: audit key: %s", exc) from None
    except JournalError as exc:
        # a bad journal is a configuration fault: found before anything connects
        raise _refuse("config error path=$.execution.journal_path: %s", exc) from None
    report = journal.verify_audit()
    if report.ok:
        log.info(
            "audit ok path=%s rows=%d head=%d checkpoints=%d accepted=%d intent_sync=%s",
            *(path, report.rows, report.head_id, report.checkpoints, len(report.accepted)),
            sync,
        )
        return journal, key
    for p in report.problems[:SHOWN_PROBLEMS]:
        log.error("audit problem path=%s audit_id=%s: %s", path, p.audit_id, p.detail)
    override = read_override(path)
    if override and override.get("fingerprint") == report.fingerprint():
        journal.reseal(report, reseal_body(report, override))
        override_path(path).unlink(missing_ok=True)  # one use: the reseal row is the record
        log.warning(
            "audit chain broken but an operator override accepts it: problems=%d reason=%r"
            " by=%s (journaled as a reseal row)",
            *(len(report.problems), override.get("reason", ""), override.get("by", "")),
        )
        return journal, key
    journal.close()  # never anchors: a broken journal writes no checkpoint
    if override is not None:
        log.error("audit override %s names other problems: ignored", override_path(path))
    raise _refuse(
        "audit chain broken path=%s problems=%d: refusing to trade. Inspect with"
        " `bitrader audit verify %s`; accept with `bitrader audit override %s --reason TEXT`",
        *(path, len(report.problems), path, path),
    )


def start_backups(config: ExecutionConfig, key: bytes) -> BackupTask | None:
    """The periodic backup thread when ``[execution.journal] backup_interval_s`` is set."""
    jc = config.journal
    if not jc.backup_interval_s:
        return None
    directory = jc.backup_dir or str(Path(config.journal_path).parent / "backups")
    task = BackupTask(
        config.journal_path, directory, jc.backup_interval_s, jc.backup_keep, AuditChain(key)
    )
    task.start()
    log.info(
        "journal backups dir=%s every=%ss keep=%d", directory, jc.backup_interval_s, jc.backup_keep
    )
    return task
