"""The feature declaration and the layouts the engine computes in.

``FEATURES`` is the one declaration of the feature names and their order in ``FEAT_V1.x``
(re-exported by ``procs.featurecalc.engine``, where model metadata, the trainer and inference read
it). Also here: the windows, where each window group sits among the feature columns, and the
record layout the engine's C code relies on.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from procs.featurecalc.book import IMBALANCE_DEPTHS
from shm.records import BOOK_V1, FEAT_V1, FEATURE_SLOTS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_S: Final = 1_000_000_000
VWAP_WINDOWS_NS: Final = (1 * _S, 10 * _S, 60 * _S)
TFI_WINDOWS_NS: Final = (1 * _S, 10 * _S, 60 * _S)
RV_WINDOWS_NS: Final = (10 * _S, 60 * _S)
RETURN_HORIZONS_NS: Final = (1 * _S, 10 * _S, 60 * _S)
COUNT_WINDOW_NS: Final = 10 * _S
HORIZONS_NS: Final = max(VWAP_WINDOWS_NS + TFI_WINDOWS_NS + RV_WINDOWS_NS + RETURN_HORIZONS_NS)


def _suffix(window_ns: int) -> str:
    return f"{window_ns // _S}s"


FEATURES: Final[tuple[str, ...]] = (
    "spread_bps",
    *(f"imbalance_{d}" for d in IMBALANCE_DEPTHS),
    "microprice_dev_bps",
    *(f"vwap_dev_bps_{_suffix(w)}" for w in VWAP_WINDOWS_NS),
    *(f"trade_flow_imbalance_{_suffix(w)}" for w in TFI_WINDOWS_NS),
    *(f"return_bps_{_suffix(h)}" for h in RETURN_HORIZONS_NS),
    *(f"realised_vol_bps_{_suffix(w)}" for w in RV_WINDOWS_NS),
    f"log1p_trades_{_suffix(COUNT_WINDOW_NS)}",
    "book_ok",
)
N_FEATURES: Final = len(FEATURES)
assert N_FEATURES <= FEATURE_SLOTS
assert len(set(FEATURES)) == N_FEATURES

_INT64_MIN: Final = np.iinfo(np.int64).min


def _rows(names: list[str]) -> slice:
    at = [FEATURES.index(n) for n in names]
    assert at == list(range(at[0], at[0] + len(at)))
    return slice(at[0], at[-1] + 1)


# each window group is a run of feature columns in the order of its windows: the C code
# (_featc.c) writes a group by its first column (procs.featurecalc.engine checks its layout)
_VWAP: Final = _rows([f"vwap_dev_bps_{_suffix(w)}" for w in VWAP_WINDOWS_NS])
_TFI: Final = _rows([f"trade_flow_imbalance_{_suffix(w)}" for w in TFI_WINDOWS_NS])
_RET: Final = _rows([f"return_bps_{_suffix(h)}" for h in RETURN_HORIZONS_NS])
_RV: Final = _rows([f"realised_vol_bps_{_suffix(w)}" for w in RV_WINDOWS_NS])
_COUNT: Final = FEATURES.index(f"log1p_trades_{_suffix(COUNT_WINDOW_NS)}")
_OK: Final = FEATURES.index("book_ok")
_SPREAD: Final = FEATURES.index("spread_bps")
_IMB: Final = [FEATURES.index(f"imbalance_{d}") for d in IMBALANCE_DEPTHS]
_MICRO: Final = FEATURES.index("microprice_dev_bps")

# a FEAT_V1 record starts with its book's 40 leading bytes (seq, ts_event_ns, ts_recv_ns,
# ts_pub_ns -> ts_feat_ns, symbol_id, flags): the C code copies them in one go
_F: Final = FEAT_V1.fields
_B: Final = BOOK_V1.fields
assert _F is not None
assert _B is not None
assert (
    [_F[k][1] for k in ("seq", "ts_event_ns", "ts_recv_ns", "ts_feat_ns", "symbol_id")]
    == [_B[k][1] for k in ("seq", "ts_event_ns", "ts_recv_ns", "ts_pub_ns", "symbol_id")]
    == [0, 8, 16, 24, 32]
)
assert _F["flags"][1] == _B["flags"][1] == 36
assert _F["mid"][1] == 40


def feature_index(name: str) -> int:
    """Return the slot of ``name`` in ``FEAT_V1.x``; raise KeyError for an unknown name."""
    try:
        return FEATURES.index(name)
    except ValueError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}") from None
