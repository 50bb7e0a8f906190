"""Compose the inference stage over a started ``Runtime``: load and warm the models, attach
ring ``feat``, create ring ``sig``. Run by the inference program and by procs.hotpath.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Final

from prometheus_client import CollectorRegistry

from ipc.messages import WAKE_SIG
from procs._config import EXIT_CONFIG
from procs._runtime import Runtime
from procs.featurecalc.engine import FEATURES
from procs.models.config import InferenceConfig
from procs.models.errors import ModelError
from procs.models.reload import ModelWatcher
from procs.models.stage import CHALLENGER, CHAMPION, InferenceProc, Model, make_metrics
from shm.records import FEAT_V1, SIG_V1
from shm.ring import RingSpec, RingWriter, attach_reader
from shm.waiters import Waker

__all__ = ["build", "load_startup"]

log = logging.getLogger("procs.inference")

SIG_STREAM: Final = WAKE_SIG  # ours, after each publish: wake.sig.


def load_startup(watch: ModelWatcher[Model]) -> Model | None:
    try:
        model = watch.load_now()
    except ModelError as exc:
        watch.mark_seen()  # retried only once the file changes
        watch.last_error = str(exc)
        effect = (
            "every signal comes from the rule-based fallback (FLAG_FALLBACK)"
            if watch.role == CHAMPION
            else "challenger scores are NaN"
        )
        log.error(
            "NO MODEL role=%s path=%s error=%s: %s until a valid file appears at that path",
            *(watch.role, watch.path, exc, effect),
        )
        return None
    log.info(
        "model loaded role=%s path=%s version=%d sha256=%s",
        *(watch.role, watch.path, model.version, watch.sha256[:16]),
    )
    return model


def build(
    config: InferenceConfig,
    rt: Runtime,
    registry: CollectorRegistry,
    stack: ExitStack,
    wrap_waker: Callable[[Waker], Waker] | None = None,
) -> InferenceProc:
    """Load and warm the models, attach ring feat, create ring sig (closed by ``stack``) and
    return the stage (``rt`` started). ``SystemExit(EXIT_CONFIG)`` when a required model is
    missing. Used by the inference program and by procs.hotpath (which defers the stage's
    wake-ups to the end of its pass: ``wrap_waker``)."""
    from procs.models.model import OnnxModel  # onnxruntime loads here, not at import

    def load(data: bytes, source: str) -> Model:
        return OnnxModel.from_bytes(data, FEATURES, batch_max=config.batch_max, source=source)

    def load_champion(data: bytes, source: str) -> Model:
        # the champion trades: only a model that passed the promotion gate (procs.ml.gate);
        # the challenger is scored in the shadow and may be anything sound
        return OnnxModel.from_bytes(
            data, FEATURES, batch_max=config.batch_max, source=source, require_promotable=True
        )

    champion_watch: ModelWatcher[Model] = ModelWatcher(CHAMPION, config.model_path, load_champion)
    champion = load_startup(champion_watch)
    if champion is None and config.require_model:
        log.error("config error path=$.inference.require_model: true and no model loaded")
        raise SystemExit(EXIT_CONFIG)
    challenger_watch: ModelWatcher[Model] | None = None
    challenger = None
    if config.challenger_path:
        challenger_watch = ModelWatcher(CHALLENGER, config.challenger_path, load)
        challenger = load_startup(challenger_watch)
    feat = stack.enter_context(attach_reader(config.feat_ring, FEAT_V1, config.attach_timeout_s))
    rt.watch_ring("feat", feat)
    spec = RingSpec(name=config.sig_ring, dtype=SIG_V1, capacity=config.sig_capacity_records)
    sig = stack.enter_context(RingWriter(spec))
    waker: Waker = rt.wake_sender(SIG_STREAM)
    return InferenceProc(
        config,
        feat=feat,
        sig=sig,
        waker=waker if wrap_waker is None else wrap_waker(waker),
        metrics=make_metrics(registry),
        champion=champion,
        champion_watch=champion_watch,
        challenger=challenger,
        challenger_watch=challenger_watch,
    )
