"""Inference: reads ring ``feat`` (FEAT_V1), writes ring ``sig`` (SIG_V1), wakes on ``wake.sig.``.

Owns the ONNX sessions (champion and optional challenger), their hot reload, the per-batch
output checks and the rule-based fallback (procs.models.scoring), and the challenger's scorecard.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from procs.models.config import InferenceConfig
from procs.models.health import REASON_LATENCY, REASON_NO_MODEL, REASONS, check_output
from procs.models.reload import ModelWatcher
from procs.models.scorecard import CHALLENGER_COL, CHAMPION_COL, Scorecard
from procs.models.scoring import fallback_score
from procs.observe import NAMESPACE, STEP_BUCKETS_S, DeferredObservations
from shm.records import FEAT_V1, FLAG_FALLBACK, SIG_V1, Records
from shm.waiters import Waker

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "FeatSource",
    "InferenceMetrics",
    "InferenceProc",
    "Model",
    "SigSink",
    "make_metrics",
]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
BATCH_BUCKETS_S: Final = STEP_BUCKETS_S  # a small batch scores in a few µs
FLUSH_S: Final = 0.1  # counters reach Prometheus this often
FLUSH_NS: Final = int(FLUSH_S * 1e9)
WARN_EVERY_NS: Final = 1_000_000_000  # at most one fallback warning per second per reason
_COPIED: Final = ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id", "flags", "mid")


# the fields a signal copies from its feat record sit in two runs of 8-byte words, in the same
# order and sizes in both layouts: FEAT_V1 words 0-3 (seq..ts_feat_ns) and 4-5 (symbol_id,
# flags, mid) are SIG_V1 words 0-3 and 5-6 (ts_sig_ns between): (first, end, SIG_V1 first)
_WORD_BLOCKS: Final = ((0, 4, 0), (4, 6, 5))


# the same blocks in bytes, for one record: (feat first, feat end, SIG_V1 first)
_WORD_BYTES: Final = tuple((8 * a, 8 * b, 8 * c) for a, b, c in _WORD_BLOCKS)


def _sig_offset(feat_offset: int) -> int:
    for a, b, c in _WORD_BLOCKS:
        if 8 * a <= feat_offset < 8 * b:
            return feat_offset + 8 * (c - a)
    return -1


assert FEAT_V1.fields is not None
assert SIG_V1.fields is not None
assert all(
    FEAT_V1.fields[k][0] == SIG_V1.fields[k][0]
    and _sig_offset(FEAT_V1.fields[k][1]) == SIG_V1.fields[k][1]
    for k in _COPIED
)
assert sum(b - a for a, b, _ in _WORD_BLOCKS) * 8 == sum(FEAT_V1[k].itemsize for k in _COPIED)


class Model(Protocol):
    """A loaded signal model: ``score`` returns one float32 per row (a view, valid until next)."""

    @property
    def version(self) -> int: ...

    def score(self, x: F32) -> F32: ...


class FeatSource(Protocol):
    """The feat ring's reader side (``shm.ring.RingReader``)."""

    @property
    def lag_records(self) -> int: ...

    @property
    def dropped_total(self) -> int: ...

    def poll_into(self, out: Records) -> int: ...

    def close(self) -> None: ...


class SigSink(Protocol):
    """The sig ring's writer side (``shm.ring.RingWriter``)."""

    def publish(self, records: Records) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class InferenceMetrics:
    records: Counter
    batches: Counter
    batch_seconds: Histogram
    fallback: Counter  # {reason}: batches scored by the fallback
    fallback_records: Counter  # {reason}
    challenger_rejected: Counter  # {reason}: challenger batches published as NaN
    reloads: Counter  # {model, result}
    model_version: Gauge  # {model}
    model_ok: Gauge
    agreement: Gauge
    hit_rate: Gauge  # {model}


def make_metrics(registry: CollectorRegistry) -> InferenceMetrics:
    p, mp = f"{NAMESPACE}_inference", f"{NAMESPACE}_model"
    m = InferenceMetrics(
        records=Counter(f"{p}_records", "signals published", registry=registry),
        batches=Counter(f"{p}_batches", "batches scored", registry=registry),
        batch_seconds=Histogram(
            f"{p}_batch_seconds",
            "poll to publish, per batch",
            buckets=BATCH_BUCKETS_S,
            registry=registry,
        ),
        fallback=Counter(
            f"{p}_fallback_batches", "batches scored by the fallback", ["reason"], registry=registry
        ),
        fallback_records=Counter(
            f"{p}_fallback_records", "records scored by the fallback", ["reason"], registry=registry
        ),
        challenger_rejected=Counter(
            f"{p}_challenger_rejected_batches",
            "challenger batches failing the output checks (published as NaN)",
            ["reason"],
            registry=registry,
        ),
        reloads=Counter(
            f"{mp}_reloads", "model file reloads", ["model", "result"], registry=registry
        ),
        model_version=Gauge(
            f"{mp}_version",
            "version of the loaded model (0: none)",
            ["model"],
            registry=registry,
        ),
        model_ok=Gauge(f"{mp}_ok", "1 when a champion model is loaded", registry=registry),
        agreement=Gauge(
            f"{mp}_challenger_agreement_ratio",
            "share of rows where champion and challenger scores have the same sign",
            registry=registry,
        ),
        hit_rate=Gauge(
            f"{mp}_hit_rate_ratio",
            "share of scored rows whose sign matched the mid move over the horizon",
            ["model"],
            registry=registry,
        ),
    )
    for reason in REASONS:  # every series exists from the start, at 0
        m.fallback.labels(reason=reason)
        m.fallback_records.labels(reason=reason)
        m.challenger_rejected.labels(reason=reason)
    for role in (CHAMPION, CHALLENGER):
        m.reloads.labels(model=role, result="ok")
        m.reloads.labels(model=role, result="refused")
        m.reloads.labels(model=role, result="not_promotable")
        m.hit_rate.labels(model=role).set(math.nan)
    m.agreement.set(math.nan)
    return m


class _Counts:
    # plain ints on the hot path; flushed into Prometheus every FLUSH_S
    def __init__(self) -> None:
        self.records = 0
        self.batches = 0
        self.fallback: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.fallback_records: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.late = 0  # champion calls over the CPU budget (strikes, benched or not)


class InferenceProc:
    """Scores feat batches with the champion (and challenger); publishes one SIG_V1 per FEAT_V1.

    Owns the sig ring writer and the feat reader it is given (closes both). One thread.
    """

    name = "inference"

    def __init__(
        self,
        config: InferenceConfig,
        *,
        feat: FeatSource,
        sig: SigSink,
        waker: Waker,
        metrics: InferenceMetrics,
        champion: Model | None,
        champion_watch: ModelWatcher[Model],
        challenger: Model | None = None,
        challenger_watch: ModelWatcher[Model] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._feat = feat
        self._sig = sig
        self._waker = waker
        self._m = metrics
        self._batch_ns = DeferredObservations(metrics.batch_seconds)  # off the scoring path
        self._champion = champion
        self._challenger = challenger
        self._watches = [(CHAMPION, champion_watch)]
        if challenger_watch is not None:
            self._watches.append((CHALLENGER, challenger_watch))
        self._has_challenger = challenger_watch is not None
        self._clock_ns = clock_ns
        self._budget_ns = int(config.latency_budget_s * 1e9)
        self._strikes_max = config.latency_strikes
        self._bench_ns = int(config.latency_bench_s * 1e9)
        self._strikes = 0  # champion calls in a row over the budget
        self._benched_until_ns = 0  # too slow: the fallback scores alone until then
        self.last_model_cpu_ns = 0  # at most: the wall time of a call within the budget
        self._cpu_timed = False  # the CPU clock is read around each call (``_call``)
        self._check_ns = int(config.reload_check_s * 1e9)
        self._next_check_ns = clock_ns() + self._check_ns
        self._next_flush_ns = 0
        self._fbuf: Records = np.zeros(config.batch_max, FEAT_V1)
        self._sbuf: Records = np.zeros(config.batch_max, SIG_V1)
        fb, sb = self._fbuf, self._sbuf
        # field views made once: a structured field lookup per batch costs more than the copy
        self._fx: F32 = fb["x"]
        self._f_seq, self._f_flags = fb["seq"], fb["flags"]
        # the fields a signal copies from its feat record, as two blocks of 8-byte words
        # (``_COPIED``: two slice copies instead of seven; ``_WORD_BLOCKS``)
        fw = fb.view(np.int64).reshape(config.batch_max, FEAT_V1.itemsize // 8)
        sw = sb.view(np.int64).reshape(config.batch_max, SIG_V1.itemsize // 8)
        self._copies = [(fw[:, a:b], sw[:, c : c + b - a]) for a, b, c in _WORD_BLOCKS]
        self._s_score, self._s_chal = sb["score"], sb["challenger"]
        self._s_version, self._s_flags, self._s_ts = (
            sb["model_version"],
            sb["flags"],
            sb["ts_sig_ns"],
        )
        self._s_chal[:] = np.nan  # stays NaN while no challenger is loaded
        # _score_one's views: the first record of each buffer, as bytes and as a batch of one
        self._fbytes = fb[:1].view(np.uint8).data
        self._sbytes = sb[:1].view(np.uint8).data
        self._x1: F32 = self._fx[:1]
        self._s1: Records = sb[:1]
        horizon_ns = int(config.hit_horizon_s * 1e9)
        self._hit_tracking = horizon_ns > 0
        self._card = Scorecard(horizon_ns)
        self._carding = self._hit_tracking or self._has_challenger
        self._sraw = self._sbuf.view(self._card.raw_dtype)  # what _published stages
        self._c = _Counts()
        self._flushed = _Counts()
        self._warned_ns: dict[str, int] = {}
        self._refused_seen: dict[str, int] = {}
        self.last_fallback_reason = ""
        self.last_seq = -1
        self._set_model_gauges()

    @property
    def champion(self) -> Model | None:
        return self._champion

    @property
    def challenger(self) -> Model | None:
        return self._challenger

    def step(self) -> int:
        now = self._clock_ns()
        if now >= self._next_check_ns:
            self._next_check_ns = now + self._check_ns
            self._reload()
        n = self._feat.poll_into(self._fbuf)
        if n:
            t0 = time.perf_counter_ns()
            self._score_batch(n)
            self._batch_ns.add(time.perf_counter_ns() - t0)  # observed in flush_metrics
        # Prometheus work on a step that found nothing (the next one, under load), not between
        # a batch and its readers: a colocated pass (procs.hotpath) runs execution after this
        # step; busy for a whole period more, it is done anyway
        if now >= self._next_flush_ns and (n == 0 or now >= self._next_flush_ns + FLUSH_NS):
            self._next_flush_ns = now + FLUSH_NS
            self.flush_metrics()
        return n

    def _score_batch(self, n: int) -> None:
        if n == 1 and self._challenger is None:  # a colocated pass per book: the common case
            self._score_one()
            return
        x = self._fx[:n]
        for src, dst in self._copies:  # first: flags are the feat record's unless set below
            dst[:n] = src[:n]
        y, version, reason = self._champion_scores(x)
        if y is not None:
            self._s_score[:n] = y
            self._s_version[:n] = version
        else:
            self._fall_back(x, n, reason)
        if self._challenger is not None:
            self._score_challenger(self._challenger, x, n)
        self._s_ts[:n] = time.time_ns()
        self._published(self._sbuf[:n], n)

    def _score_one(self) -> None:
        """``_score_batch`` for one record and no challenger: the same record, by scalar
        stores and byte copies instead of one-row numpy slices (~1 µs less per step)."""
        fb, sb = self._fbytes, self._sbytes
        for a, b, c in _WORD_BYTES:  # first: flags are the feat record's unless set below
            sb[c : c + b - a] = fb[a:b]
        y, version, reason = self._champion_scores(self._x1)
        if y is not None:
            self._s_score[0] = y[0]
            self._s_version[0] = version
        else:
            self._fall_back(self._x1, 1, reason)
        self._s_ts[0] = time.time_ns()
        self._published(self._s1, 1)

    def _champion_scores(self, x: F32) -> tuple[F32 | None, int, str]:
        """The champion's scores for ``x`` and its version, or None and the reason the batch
        falls back."""
        champ = self._champion
        if champ is None:
            return None, 0, REASON_NO_MODEL
        if self._benched_until_ns:
            if self._clock_ns() < self._benched_until_ns:
                return None, 0, REASON_LATENCY  # benched: too slow a moment ago
            self._benched_until_ns = 0
            log.info("model back from the latency bench version=%s", champ.version)
        y, cpu = self._call(champ, x)
        reason = check_output(y, 0, self._budget_ns)  # the values; CPU time below
        if reason is None and cpu > self._budget_ns:
            reason = self._strike(cpu, champ.version)
        elif reason is None:
            self._strikes = 0
        return (y, champ.version, "") if reason is None else (None, 0, reason)

    def _fall_back(self, x: F32, n: int, reason: str) -> None:
        self._s_score[:n] = fallback_score(x)
        self._s_version[:n] = 0
        np.bitwise_or(self._f_flags[:n], FLAG_FALLBACK, out=self._s_flags[:n])
        self._on_fallback(reason, n)

    def _published(self, s: Records, n: int) -> None:
        self._sig.publish(s)
        self._waker.notify()
        c = self._c
        c.records += n
        c.batches += 1
        self.last_seq = self._f_seq.item(n - 1)
        if self._carding:
            self._card.add_raw(self._sraw[:n])

    def _call(self, champ: Model, x: F32) -> tuple[F32, int]:
        """The champion's scores and the CPU time the call is judged on.

        The wall clock first: a call's CPU time on its thread is at most its wall time, so a
        call within the budget on the wall clock is within it on the CPU, with no read of the
        thread's CPU clock (a system call, 0.75 µs here, two per call). The first call over the
        budget on the wall clock cannot be judged (0: no strike); the calls after it read the
        CPU clock too, until one is within the budget on the wall clock again."""
        t = time.perf_counter_ns()
        if not self._cpu_timed:
            y = champ.score(x)
            wall = time.perf_counter_ns() - t
            self._cpu_timed = wall > self._budget_ns
            self.last_model_cpu_ns = cpu = 0 if self._cpu_timed else wall
            return y, cpu
        c = time.thread_time_ns()
        y = champ.score(x)
        self.last_model_cpu_ns = cpu = time.thread_time_ns() - c
        self._cpu_timed = time.perf_counter_ns() - t > self._budget_ns
        return y, cpu

    def _strike(self, cpu_ns: int, version: int) -> str | None:
        """One champion call over the CPU budget: None (use its answer) until the strikes are
        reached, then REASON_LATENCY and the model is benched for latency_bench_s."""
        self._strikes += 1
        self._c.late += 1
        if self._strikes < self._strikes_max:
            return None
        self._strikes = 0
        self._benched_until_ns = self._clock_ns() + self._bench_ns
        log.warning(
            "model too slow: benched version=%s cpu_us=%.0f budget_us=%.0f strikes=%d bench_s=%.1f",
            *(version, cpu_ns / 1e3, self._budget_ns / 1e3, self._strikes_max),
            self._bench_ns / 1e9,
        )
        return REASON_LATENCY

    def _score_challenger(self, chal: Model, x: F32, n: int) -> None:
        t = time.thread_time_ns()
        y = chal.score(x)
        reason = check_output(y, time.thread_time_ns() - t, self._budget_ns)
        if reason is None:
            self._s_chal[:n] = y
            return
        self._s_chal[:n] = np.nan
        self._c.rejected[reason] += 1

    def _on_fallback(self, reason: str, n: int) -> None:
        c = self._c
        c.fallback[reason] += 1
        c.fallback_records[reason] += n
        self.last_fallback_reason = reason
        now = self._clock_ns()
        if now >= self._warned_ns.get(reason, 0):
            self._warned_ns[reason] = now + WARN_EVERY_NS
            log.warning(
                "fallback scorer in use reason=%s batches_total=%d records_total=%d",
                *(reason, c.fallback[reason], c.fallback_records[reason]),
            )

    def _reload(self) -> None:
        for role, watch in self._watches:
            new = watch.poll()
            if new is not None:
                self._swap(role, new, watch)
        self._sync_refusals()

    def _swap(self, role: str, new: Model, watch: ModelWatcher[Model]) -> None:
        old = self._champion if role == CHAMPION else self._challenger
        if role == CHAMPION:
            self._champion = new
            self._strikes, self._benched_until_ns = 0, 0  # a new model is judged afresh
            self._cpu_timed = False
        else:
            self._challenger = new
        # the scorecard belongs to the pair that ran: score what the old model published first
        self._card.reset(CHAMPION_COL if role == CHAMPION else CHALLENGER_COL)
        self._m.reloads.labels(model=role, result="ok").inc()
        self._set_model_gauges()
        log.info(
            "model reloaded role=%s path=%s version=%s->%d sha256=%s",
            *(role, watch.path, "none" if old is None else old.version, new.version),
            watch.sha256[:16],
        )

    def _sync_refusals(self) -> None:
        # result="refused": unusable files; result="not_promotable": sound, but failed the gate
        for role, watch in self._watches:
            for result, total in (
                ("refused", watch.refused_total - watch.not_promotable_total),
                ("not_promotable", watch.not_promotable_total),
            ):
                seen = self._refused_seen.get(f"{role}/{result}", 0)
                if total > seen:
                    self._m.reloads.labels(model=role, result=result).inc(total - seen)
                    self._refused_seen[f"{role}/{result}"] = total

    def _set_model_gauges(self) -> None:
        champ, chal = self._champion, self._challenger
        self._m.model_version.labels(model=CHAMPION).set(0 if champ is None else champ.version)
        self._m.model_version.labels(model=CHALLENGER).set(0 if chal is None else chal.version)
        self._m.model_ok.set(0 if champ is None else 1)

    def flush_metrics(self) -> None:
        """Move the hot path's counts into Prometheus and refresh the gauges."""
        c, f, m = self._c, self._flushed, self._m
        self._batch_ns.flush()
        if c.records > f.records:
            m.records.inc(c.records - f.records)
            m.batches.inc(c.batches - f.batches)
            f.records, f.batches = c.records, c.batches
        for table, flushed, counter in (
            (c.fallback, f.fallback, m.fallback),
            (c.fallback_records, f.fallback_records, m.fallback_records),
            (c.rejected, f.rejected, m.challenger_rejected),
        ):
            for reason, value in table.items():
                if value > flushed[reason]:
                    counter.labels(reason=reason).inc(value - flushed[reason])
                    flushed[reason] = value
        if self._carding:
            m.agreement.set(self._card.agreement_ratio())
            m.hit_rate.labels(model=CHAMPION).set(self._card.hit_rate(CHAMPION_COL))
            m.hit_rate.labels(model=CHALLENGER).set(self._card.hit_rate(CHALLENGER_COL))

    def agreement_ratio(self) -> float:
        """Sign agreement of champion and challenger since either was last swapped (NaN: none)."""
        return self._card.agreement_ratio()

    def hit_rate(self, role: str) -> float:
        """Hit rate of ``role`` since its model was last swapped (NaN: nothing resolved yet)."""
        return self._card.hit_rate(CHAMPION_COL if role == CHAMPION else CHALLENGER_COL)

    def health(self) -> dict[str, float | int | str]:
        self.flush_metrics()
        c = self._c
        champ, chal = self._champion, self._challenger
        champ_watch = self._watches[0][1]
        out: dict[str, float | int | str] = {
            "last_seq": self.last_seq,
            "records_total": c.records,
            "batches_total": c.batches,
            "model_ok": int(champ is not None),
            "model_version": 0 if champ is None else champ.version,
            "model_path": champ_watch.path,
            "model_sha256": champ_watch.sha256,
            "fallback_total": sum(c.fallback.values()),
            "fallback_records_total": sum(c.fallback_records.values()),
            "last_fallback_reason": self.last_fallback_reason,
            "late_calls_total": c.late,  # over the CPU budget; benched after latency_strikes
            "last_model_cpu_us": self.last_model_cpu_ns / 1e3,  # an upper bound, see _call
            "benched": int(self._benched_until_ns > 0),
            "reloads_total": sum(w.loaded_total for _, w in self._watches),
            "reload_refused_total": sum(w.refused_total for _, w in self._watches),
            "reload_not_promotable_total": sum(w.not_promotable_total for _, w in self._watches),
            "last_reload_error": champ_watch.last_error,
            "ring_lag_records": self._feat.lag_records,
            "ring_dropped_total": self._feat.dropped_total,
        }
        if self._has_challenger:
            out["challenger_version"] = 0 if chal is None else chal.version
            out["challenger_agreement_ratio"] = self.agreement_ratio()
            out["challenger_rejected_total"] = sum(c.rejected.values())
        if self._hit_tracking:
            out["hit_rate_champion"] = self.hit_rate(CHAMPION)
            out["hit_rate_challenger"] = self.hit_rate(CHALLENGER)
            out["hit_pending_records"], out["hit_pending_dropped_total"] = self._card.pending()
        return out

    def close(self) -> None:
        self.flush_metrics()
        self._feat.close()
        self._sig.close()
