"""The chaos suite's storage faults on the running group: a corrupted journal, a corrupted
capture file, a full disk. Each is the sequence an operator lives through, with its checks.

- ``corrupt_journal``: stop execution, back the journal up (``bitrader journal backup``),
  damage it (random bytes over a table's root page, or truncate it), start execution: it must
  exit 78 with a ``config error`` line, never a loop that trades (FATAL after startretries, or
  EXITED when the exit came after startsecs), ``bitrader health`` must say execution is down;
  then ``bitrader journal restore`` and a start: execution reconciles and trades again.
- ``corrupt_capture``: restart capture (its file is closed, a new one opened), damage the closed
  file (random bytes over its header, or truncate it): ``bitrader capture ls`` and ``info``,
  ``bitrader backtest`` and simex replaying it must refuse it with 78 and name it, quickly;
  capture keeps writing.
- ``fill_disk``: fill the small filesystem that holds the journal, the kill-switch file and the
  captures: capture pauses and counts; execution keeps trading safely or halts loudly; ``bitrader
  kill-switch on`` still acts; when space returns everything recovers (switch off, capture
  resumes, execution trades).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from procs.group import health
from procs.group.supervise import ROOT, rpc
from tests.helpers.chaos_checks import ProgramEvents, supervisor_events
from tests.helpers.group_config import EXEC_KEY
from tests.helpers.group_run import REST_POLL_S, Group, bitrader
from tests.helpers.simex_proc import http, write_config

START_RETRIES = 3  # supervisord.conf [program:execution] startretries
FILLER = "filler.bin"


def _ok(res: subprocess.CompletedProcess[str], what: str, g: Group | None = None) -> None:
    why = "" if g is None else g.why("execution", "capture")
    assert res.returncode == 0, f"{what}: rc={res.returncode}\n{res.stdout}\n{res.stderr}\n{why}"


def mount_small_disk(path: Path, size_mib: int) -> str:
    """Mount a tmpfs of ``size_mib`` at ``path``; return "" or why it cannot be done here."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "not root: no small filesystem to fill (mount needs root)"
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if res.returncode == 0 else f"mount tmpfs failed: {res.stderr.strip()}"


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class Storage:
    """Runs the storage faults on ``g``; records the exits and stops they cause."""

    def __init__(self, g: Group, rng: random.Random, disk: Path | None) -> None:
        self.g = g
        self.rng = rng
        self.disk = disk
        self.expected_exits: dict[str, Counter[str]] = {}
        self.expected_fatal: Counter[str] = Counter()
        self.stops: Counter[str] = Counter()
        self.corrupt_captures: set[Path] = set()
        self.capture_copies: dict[Path, Path] = {}  # a corrupted file -> the copy kept before
        self.notes: Counter[str] = Counter()

    # ---- supervisord ----------------------------------------------------------------------

    def stop(self, name: str) -> None:
        with rpc(self.g.run_dir) as proxy:
            proxy.supervisor.stopProcess(f"pipeline:{name}", True)
        self.stops[name] += 1

    def start(self, name: str, wait: bool = True) -> None:
        with rpc(self.g.run_dir) as proxy:
            proxy.supervisor.startProcess(f"pipeline:{name}", wait)

    def _expect_exit(self, name: str, why: str, n: int = 1) -> None:
        self.expected_exits.setdefault(name, Counter())[why] += n

    # ---- a corrupted journal ----------------------------------------------------------------

    def corrupt_journal(self) -> str:
        g = self.g
        journal = g.cfg.journal_path
        self.stop("execution")
        backup = g.run_dir / "backups" / f"journal-{time.time_ns()}.sqlite"
        backup.parent.mkdir(exist_ok=True)
        _ok(bitrader("journal", "backup", str(journal), str(backup), timeout_s=60), "backup")
        how = self._damage_journal(journal)
        sent_before = _place_orders(g)
        sup_log = g.run_dir / "supervisord.log"
        log_from = sup_log.stat().st_size
        self.start("execution", wait=False)
        # exit 78, never a loop that trades: FATAL after startretries when it exits within
        # startsecs, EXITED (an expected exit) when its checks took longer
        down = ("FATAL", "EXITED")
        g.wait_until(lambda: g.info("execution")["statename"] in down, 90, "execution down")
        state = g.info("execution")["statename"]
        with sup_log.open() as f:
            f.seek(log_from)
            exits = supervisor_events(f.read()).get("execution", ProgramEvents()).exits
        n78 = exits.pop("exit status 78", 0)
        assert exits == Counter(), exits  # nothing but 78
        if state == "FATAL":
            assert n78 == START_RETRIES + 1, n78
        assert 1 <= n78 <= START_RETRIES + 1, (state, n78)
        self._expect_exit("execution", "exit status 78", n78)
        self.expected_fatal["execution"] += state == "FATAL"
        self.notes[f"journal:{state}"] += 1
        log = (g.run_dir / "logs" / "execution.log").read_text(errors="replace")
        assert "config error path=$.execution.journal_path: journal" in log, log[-2000:]
        res = bitrader("health", "--run-dir", str(g.run_dir), "--json", timeout_s=60)
        rows = {r["name"]: r for r in json.loads(res.stdout)}
        assert res.returncode != health.EXIT_HEALTHY, res.stdout
        assert not rows["execution"]["healthy"], rows
        assert rows["execution"]["state"] == state, rows
        assert _place_orders(g) == sent_before, "orders went out on a corrupt journal"
        # the operator's fix: restore the backup, start execution again
        _ok(bitrader("journal", "restore", str(backup), str(journal), timeout_s=60), "restore")
        self.start("execution", wait=False)
        self.stops["execution"] += 1  # the start after it went down: one more spawn, caused
        g.wait_until(g.all_running, 90, "every program RUNNING after the restore")
        g.wait_until(lambda: g.exec_state() == "active", 90, "execution active after restore")
        return f"journal:{how}"

    def _damage_journal(self, journal: Path) -> str:
        conn = sqlite3.connect(journal)  # execution is stopped: the WAL goes into the file
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            roots = [int(r[0]) for r in conn.execute("SELECT rootpage FROM sqlite_master")]
        finally:
            conn.close()
        if self.rng.random() < 0.5:
            os.truncate(journal, self.rng.randrange(1, max(2, journal.stat().st_size - 1)))
            return "truncated"
        root = self.rng.choice([r for r in roots if r > 1])  # a table's or index's b-tree root
        with journal.open("r+b") as f:
            f.seek((root - 1) * page)
            f.write(self.rng.randbytes(page))
        return "bytes"

    # ---- a corrupted capture ----------------------------------------------------------------

    def corrupt_capture(self) -> str:
        g = self.g
        old = str(g.health("capture").get("file") or "")
        self.stop("capture")
        self.start("capture")
        g.wait_until(
            lambda: str(g.health("capture").get("file") or old) != old, 30, "a new capture file"
        )
        victim = Path(old) if old else None
        if victim is None or not victim.exists() or victim in self.corrupt_captures:
            self.notes["capture:no_closed_file"] += 1
            return "capture:none"
        # the test's own copy first: the stale-data verdict reads the books in it
        keep = self.g.run_dir / "evidence" / victim.name
        keep.parent.mkdir(exist_ok=True)
        shutil.copyfile(victim, keep)
        self.capture_copies[victim] = keep
        size = victim.stat().st_size
        if self.rng.random() < 0.5:
            os.truncate(victim, self.rng.randrange(1, max(2, size // 2)))
            how = "truncated"
        else:
            with victim.open("r+b") as f:
                f.write(self.rng.randbytes(min(size, 4096)))
            how = "bytes"
        self.corrupt_captures.add(victim)
        written = _capture_written(g)
        for args in (("ls", str(g.cfg.capture_dir)), ("info", str(victim))):
            res = bitrader("capture", *args, timeout_s=60)
            assert res.returncode == 78, (args, res.returncode, res.stdout, res.stderr)
            assert victim.name in res.stdout + res.stderr, (args, res.stdout, res.stderr)
        res = bitrader(
            "backtest", "--captures", str(victim), "--config", str(g.cfg.path),
            "--out", str(g.run_dir / "bt-refused"), "--progress", "off", timeout_s=120,
        )  # fmt: skip
        assert res.returncode == 78, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
        assert victim.name in res.stderr, res.stderr[-2000:]
        # simex replaying it refuses to start: 78, naming the file
        sim_dir = g.run_dir / f"replay-refused-{len(self.corrupt_captures)}"
        sim_dir.mkdir()
        market = f'[simex.market]\nsource = "replay"\nreplay_path = "{victim}"'
        cmd = [sys.executable, "-m", "procs.simex", str(write_config(sim_dir, market))]
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
        )
        assert res.returncode == 78, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
        assert victim.name in res.stdout + res.stderr, res.stderr[-2000:]
        g.wait_until(lambda: _capture_written(g) > written, 30, "capture writes on")
        return f"capture:{how}"

    # ---- a full disk ------------------------------------------------------------------------

    def fill_disk(self) -> str:
        g = self.g
        assert self.disk is not None
        filler = self.disk / FILLER
        # execution up first: one still starting (SIGKILLed just before) cannot acknowledge the
        # kill switch below yet. Its breaker may have latched before (a stale-data or WS trip):
        # it never resets itself, so without a restart execution comes back to that state
        breaker_before = _answer(g, "breaker")
        _fill(filler)
        sent = _place_orders(g)
        g.wait_until(
            lambda: g.health("capture").get("write_paused") not in (None, "no"),
            30,
            "capture paused",
        )
        # the kill switch acts on a full disk: acknowledged, every order cancelled
        res = bitrader("kill-switch", "on", "--run-dir", str(g.run_dir), "--reason", "disk full")
        _ok(res, "kill-switch on, disk full", g)
        g.wait_until(lambda: _killed(g.health("execution")), 30, "execution killed on a full disk")
        g.wait_until(lambda: g.simex.open_orders() == [], 30, "no open order", REST_POLL_S)
        self.notes["disk:orders_while_full"] += _place_orders(g) - sent
        filler.unlink()
        # asked after the room is back: the journal's first refusal may come at any moment of
        # the full disk (its WAL reuses pages it has), and write_error is sticky; an answer, not
        # the {} of a health request that timed out
        refused = _answer(g, "journal_write_error")
        # the operator's way back (docs/operations.md): room again, switch off, and a restart of
        # execution when its journal refused a write (it halted; the restart reconciles)
        _ok(bitrader("kill-switch", "off", "--run-dir", str(g.run_dir)), "kill-switch off", g)
        if refused:
            self.notes["disk:journal_refused"] += 1
            self.stop("execution")
            self.start("execution")
        g.wait_until(lambda: g.health("capture").get("write_paused") == "no", 30, "capture resumed")
        g.wait_until(g.all_running, 90, "every program RUNNING after the full disk")
        # a restart starts with the breaker ACTIVE; without one the full disk must leave the
        # breaker where it found it (the kill switch off, nothing else changed)
        want = "ACTIVE" if refused else breaker_before
        if breaker_before != "ACTIVE":
            self.notes[f"disk:breaker_{breaker_before}_before"] += 1
        g.wait_until(
            lambda: (
                (h := g.health("execution")).get("state") == _TRADING[want]
                and h.get("breaker") == want
            ),
            90,
            f"execution {_TRADING[want]} after it (breaker {breaker_before} before)",
        )
        return "disk:full"


_TRADING = {"ACTIVE": "active", "REDUCING": "reducing", "HALTED": "halted"}  # breaker → state


def _answer(g: Group, key: str) -> str:
    """Execution's health counter ``key`` once it answers (``Group.health`` gives {} when a
    request times out, and no counters while execution is starting)."""
    h = g.wait_until(
        lambda: (h := g.health("execution")).get("breaker") is not None and h,
        30,
        "execution answers health",
    )
    return str(h.get(key) or "")


def _killed(h: dict[str, object]) -> bool:
    """The kill switch holds. A fill the full disk kept out of the journal puts execution out of
    sync with the venue: "reconciling" (not trading, the stuck reason names the journal) is then
    as safe as "killed", and the restart below books the fill from the venue."""
    if h.get("kill_switch") != 1:
        return False
    return h.get("state") == "killed" or (
        h.get("state") == "reconciling" and bool(h.get("journal_write_error"))
    )


def _fill(path: Path) -> None:
    """Fill ``path``'s filesystem to the last byte."""
    st = os.statvfs(path.parent)
    with path.open("wb", buffering=0) as f:
        try:
            os.posix_fallocate(f.fileno(), 0, max(1, st.f_bavail * st.f_frsize))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        f.seek(0, os.SEEK_END)
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise


def _place_orders(g: Group) -> int:
    """place_order requests by execution's key that simex has seen (its request log)."""
    _, out = http("GET", g.cfg.control_url + "/_simex/requests")
    return sum(
        1
        for e in out["entries"]
        if e[2] == EXEC_KEY[0] and e[3].endswith(("/place_order", "/batch_order"))
    )


def _capture_written(g: Group) -> int:
    return int(g.health("capture").get("records_total") or 0)
