"""InferenceConfig: the ``[inference]`` section (rings, model paths, latency budget, runtime).

Read by the inference process and by the backtester, which scores through the same settings.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ipc.endpoints import EndpointError, validate
from procs._config import RuntimeConfig

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]


class InferenceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    runtime: RuntimeConfig
    feat_ring: str  # e.g. "{ns}.features.feat"
    sig_ring: str  # e.g. "{ns}.inference.sig"; this process is its writer
    features_pub: str  # the features process's PUB endpoint: wake-ups on "wake.feat."
    model_path: str  # the champion's ONNX file, watched for hot reload
    challenger_path: str | None = None  # scored on every batch, published in SIG_V1.challenger
    sig_capacity_records: PositiveInt = 1 << 16
    batch_max: PositiveInt = 256
    # the budget judges the model, not the host: a call's CPU time on its own thread (thread
    # CPU clock; the model runs on the caller's thread, intra_op_num_threads=1), so a call that
    # was preempted or waited for its core is not "slow". latency_strikes calls in a row over
    # the budget mean the model is too slow: the fallback then scores alone for latency_bench_s
    # (the model is not called), and the model is tried again after it. A late call below the
    # strikes is used: its answer is already computed and valid. The wall clock is read first
    # (CPU time <= wall time): the CPU clock only after a call late on the wall clock
    latency_budget_s: PosFloat = 2e-3
    latency_strikes: PositiveInt = 3
    latency_bench_s: PosFloat = 5.0
    reload_check_s: NonNegFloat = 1.0  # look at the model files no more often than this
    hit_horizon_s: NonNegFloat = 1.0  # hit rate: sign of the mid move this far ahead; 0 = off
    require_model: bool = False  # true: exit 78 when no model loads at start-up
    attach_timeout_s: PosFloat = 10.0  # wait this long for the feat ring at start-up

    def __post_init__(self) -> None:
        cap = self.sig_capacity_records
        if cap & (cap - 1):
            raise ValueError(f"sig_capacity_records must be a power of two, was {cap}")
        if self.batch_max > cap:
            raise ValueError(f"batch_max {self.batch_max} exceeds sig_capacity_records {cap}")
        try:
            validate(self.features_pub, allow_remote=self.runtime.allow_remote_endpoints)
        except EndpointError as exc:
            raise ValueError(f"features_pub: {exc}") from None
