from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from procs._config import RuntimeConfig
from procs.featurecalc.engine import FEATURES
from procs.models.config import InferenceConfig
from procs.models.model import OnnxModel
from procs.models.reload import ModelWatcher
from procs.models.stage import CHALLENGER, CHAMPION, InferenceProc, make_metrics
from shm.records import FEAT_V1, SIG_V1
from shm.ring import RingReader, RingSpec, RingWriter
from tests.helpers.inference_models import model_bytes, write_model


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


class RecordingWaker:
    def __init__(self) -> None:
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1


def loader(batch_max: int, *, champion: bool = False) -> Callable[[bytes, str], OnnxModel]:
    # as procs.inference.__main__: only the champion's loader asks for the promotion gate
    def load(data: bytes, source: str) -> OnnxModel:
        return OnnxModel.from_bytes(
            data, FEATURES, batch_max=batch_max, source=source, require_promotable=champion
        )

    return load


@dataclass
class Rig:
    proc: InferenceProc
    feat: RingWriter
    sig: RingReader
    registry: CollectorRegistry
    clock: FakeClock
    waker: RecordingWaker
    model_path: Path
    challenger_path: Path | None

    def step_all(self, max_steps: int = 100) -> int:
        total = 0
        for _ in range(max_steps):
            n = self.proc.step()
            if n == 0:
                return total
            total += n
        return total

    def metric(self, name: str, **labels: str) -> float | None:
        self.proc.flush_metrics()
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def make_rig(tmp_path, ns):
    made: list[Rig] = []

    def make(champion=b"default", challenger=None, **overrides):
        model_path = tmp_path / "champion.onnx"
        if champion is not None:
            write_model(model_path, model_bytes() if champion == b"default" else champion)
        chal_path = tmp_path / "challenger.onnx" if challenger is not None else None
        if chal_path is not None and challenger is not None:
            write_model(chal_path, challenger)
        cfg = InferenceConfig(
            runtime=RuntimeConfig(
                pub_endpoint=f"ipc://{tmp_path}/i.pub", control_endpoint=f"ipc://{tmp_path}/i.ctl"
            ),
            feat_ring=f"{ns}.features.feat",
            sig_ring=f"{ns}.inference.sig",
            features_pub=f"ipc://{tmp_path}/f.pub",
            model_path=str(model_path),
            challenger_path=None if chal_path is None else str(chal_path),
            **{"batch_max": 64, "sig_capacity_records": 1024, "latency_budget_s": 1.0, **overrides},
        )
        feat_w = RingWriter(RingSpec(name=cfg.feat_ring, dtype=FEAT_V1, capacity=1024))
        sig_w = RingWriter(RingSpec(name=cfg.sig_ring, dtype=SIG_V1, capacity=1024))
        sig_r = RingReader(cfg.sig_ring, SIG_V1, from_start=True)
        registry = CollectorRegistry()
        clock = FakeClock()
        waker = RecordingWaker()
        load = loader(cfg.batch_max)
        watch = ModelWatcher(CHAMPION, cfg.model_path, loader(cfg.batch_max, champion=True))
        champ = watch.load_now() if champion is not None else None
        if champ is None:
            watch.mark_seen()
        chal_watch = ModelWatcher(CHALLENGER, str(chal_path), load) if chal_path else None
        chal = chal_watch.load_now() if chal_watch is not None else None
        proc = InferenceProc(
            cfg,
            feat=RingReader(cfg.feat_ring, FEAT_V1),
            sig=sig_w,
            waker=waker,
            metrics=make_metrics(registry),
            champion=champ,
            champion_watch=watch,
            challenger=chal,
            challenger_watch=chal_watch,
            clock_ns=clock,
        )
        rig = Rig(proc, feat_w, sig_r, registry, clock, waker, model_path, chal_path)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.sig.close()
        rig.proc.close()
        rig.feat.close()
