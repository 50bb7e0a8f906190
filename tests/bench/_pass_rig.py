"""The colocated pass's fixed costs, for ``bench_stages``: ``colocated_pass_book`` and
``colocated_pass_chunk``.

One pass of ``procs.hotpath.HotPath`` over features → inference as the colocated process
composes them (the stages' own classes on real rings, each step wrapped by its ``Runtime``
(``adopt``), the wake-ups deferred to the end of the pass and sent on a bound PUB socket, the
model ``configs/models/default.onnx`` through ``OnnxModel``), for the books (and the trades
before them) published just before it: one book of one symbol, and a chunk of 12 books of two
symbols, as procs.hotpath's ``InlineBooks`` runs them. Execution is left out (its own rows:
``stage_execution_*``); ingest's flush too (``stage_ingest_frame``).

Baseline, in the same run: the compute itself, nothing else: a ``FeatureEngine`` of its own
fed the same books and trades (``update``: the engine's one-book path for one book, its array
path per symbol for the chunk) and one prebound ``run_with_iobinding`` of the model for as many
rows (``bench_inference._bare``). The ratio is the pass's cost over its compute: what a pass
adds around it (stepping, ring reads and writes, records, output checks, counters, wake-ups).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from ipc.sockets import WakeSender, bind_pub
from procs._config import RuntimeConfig
from procs._runtime import Runtime
from procs.featurecalc.config import FeaturesConfig
from procs.featurecalc.engine import FEATURES, N_FEATURES, FeatureEngine
from procs.featurecalc.stage import FeaturesProc
from procs.featurecalc.stage import make_metrics as feat_metrics
from procs.hotpath.proc import DeferredWakes, HotPath
from procs.ml.synth import synthetic_market
from procs.models.config import InferenceConfig
from procs.models.model import OnnxModel
from procs.models.reload import ModelWatcher
from procs.models.stage import CHAMPION, InferenceProc, Model
from procs.models.stage import make_metrics as inf_metrics
from shm.records import BOOK_V1, FEAT_V1, SIG_V1, TRADE_V1, Records
from shm.ring import RingReader, RingSpec, RingWriter
from tests.bench.bench_inference import _bare, _model_bytes
from tests.conftest import unique_ns

CHUNK_BOOKS = 12  # a busy pass (procs.hotpath.CHUNK_START was 12; kept so the rows compare)
CHUNK_SYMBOLS = 2


class PassRig:
    """Features and inference on real rings, one ``HotPath`` over them; ``step(k)`` publishes
    the ``k``-th group of ``books_per_pass`` books (and the trades up to its last) and runs
    one pass; ``bare(k)`` computes the same group's features and scores, vectorised."""

    def __init__(self, stack: ExitStack, books_per_pass: int, n_symbols: int, n_passes: int):
        ns = unique_ns("bp")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pass-")))
        rtc = RuntimeConfig(pub_endpoint=f"ipc://{tmp}/rt.pub", control_endpoint=f"ipc://{tmp}/c")
        self.k = books_per_pass
        books, trades = synthetic_market(
            seed=11, n_books=books_per_pass * n_passes, n_symbols=n_symbols
        )
        self.books, self.trades = books, trades
        # the trades each group needs first: every trade up to its last book's receipt
        ends = books["ts_recv_ns"][books_per_pass - 1 :: books_per_pass]
        self.trade_end = np.searchsorted(trades["ts_recv_ns"], ends, "right").tolist()

        def ring(name: str, dtype: np.dtype, capacity: int = 1 << 12) -> RingWriter:
            w = RingWriter(RingSpec(name=f"{ns}.{name}", dtype=dtype, capacity=capacity))
            stack.callback(w.close)
            return w

        self.book_w, self.trade_w = ring("book", BOOK_V1), ring("trade", TRADE_V1)
        feat_w, sig_w = ring("feat", FEAT_V1), ring("sig", SIG_V1, 1 << 16)  # drained per row
        pub = bind_pub(f"ipc://{tmp}/pub")
        stack.callback(pub.close)
        wakes = DeferredWakes()  # sent at the end of the pass (the process: a loop callback)
        fcfg = FeaturesConfig(runtime=rtc, n_symbols=n_symbols)
        features = FeaturesProc(
            fcfg,
            books=RingReader(f"{ns}.book", BOOK_V1),
            trades=RingReader(f"{ns}.trade", TRADE_V1),
            out=feat_w,
            waker=wakes.wrap(WakeSender(pub, b"wake.feat.")),
            metrics=feat_metrics(CollectorRegistry()),
        )
        data, _ = _model_bytes()
        model_path = tmp / "m.onnx"
        model_path.write_bytes(data)
        icfg = InferenceConfig(
            runtime=rtc, feat_ring=f"{ns}.feat", sig_ring=f"{ns}.sig",
            features_pub=f"ipc://{tmp}/f", model_path=str(model_path),
        )  # fmt: skip

        def load(b: bytes, src: str) -> Model:
            return OnnxModel.from_bytes(b, FEATURES, batch_max=icfg.batch_max, source=src)

        watch: ModelWatcher[Model] = ModelWatcher(CHAMPION, str(model_path), load)
        inference = InferenceProc(
            icfg,
            feat=RingReader(icfg.feat_ring, FEAT_V1),
            sig=sig_w,
            waker=wakes.wrap(WakeSender(pub, b"wake.sig.")),
            metrics=inf_metrics(CollectorRegistry()),
            champion=watch.load_now(),
            champion_watch=watch,
        )
        stack.callback(features.close)
        stack.callback(inference.close)
        rts = [Runtime(n, rtc, CollectorRegistry()) for n in ("features", "inference")]
        self.hot = HotPath([rts[0].adopt(features), rts[1].adopt(inference)], wakes)
        self.sig_r = RingReader(f"{ns}.sig", SIG_V1)
        stack.callback(self.sig_r.close)
        self._sent = 0
        rows = np.zeros((books_per_pass, N_FEATURES), np.float32)
        self._model_call = _bare(data, rows)
        self._engine = FeatureEngine(n_symbols)  # the baseline's: fed the same books, trades

    def group(self, k: int) -> tuple[Records, int, int]:
        t0 = self.trade_end[k - 1] if k else 0
        return self.books[k * self.k : (k + 1) * self.k], t0, self.trade_end[k]

    def step(self, k: int) -> None:
        books, t0, t1 = self.group(k)
        if t1 > t0:
            self.trade_w.publish(self.trades[t0:t1])
        self.book_w.publish(books)
        self.hot.step()

    def bare(self, k: int) -> None:
        books, t0, t1 = self.group(k)
        self._engine.update(books, self.trades[t0:t1])
        self._model_call()

    def signals(self) -> int:
        """Signals published so far (drained from ring sig)."""
        while got := int(self.sig_r.poll(1 << 12).size):
            self._sent += got
        return self._sent


def passes(
    books_per_pass: int, n_symbols: int, n: int, blocks: int
) -> tuple[Callable[[int], None], Callable[[int], None], Callable[[], None], ExitStack, PassRig]:
    """(stage, bare, setup, closer, rig) for ``bench_stages._compare``: ``blocks`` blocks of
    ``n`` passes after 200 warm-up passes, each pass on books never seen before."""
    stack = ExitStack()
    rig = PassRig(stack, books_per_pass, n_symbols, 200 + n * blocks)
    for k in range(200):  # the engines' windows fill, the model's first runs
        rig.step(k)
        rig.bare(k)
    pos = [200 - n]

    def setup() -> None:
        pos[0] += n

    def stage(i: int) -> None:
        rig.step(pos[0] + i)

    def bare(i: int) -> None:
        rig.bare(pos[0] + i)

    return stage, bare, setup, stack, rig
