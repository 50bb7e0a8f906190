"""The feature declaration and the layouts the engine computes in.

``FEATURES`` is the one declaration of the feature names and their order in ``FEAT_V1.x``
(re-exported by ``procs.featurecalc.engine``, where model metadata, the trainer and inference read
it). Also here: the windows, where each window group sits among the lookup offsets and the
feature rows, and the record views the engine reads and writes through.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from procs.featurecalc.book import IMBALANCE_DEPTHS
from shm.records import BOOK_V1, FEAT_V1, FEATURE_SLOTS, TRADE_V1

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
_INF: Final = float("inf")

# Every lookup is "the last row with key <= key - offset"; one offset list serves trades and books.
# Row 0 is "now". The C code (_featc.c) relies on each window group being a run of these offsets,
# in the order its feature columns are declared (asserted below).
_OFFSETS: Final = np.array(
    [
        0,
        *sorted(
            {
                *VWAP_WINDOWS_NS,
                *TFI_WINDOWS_NS,
                *RETURN_HORIZONS_NS,
                *RV_WINDOWS_NS,
                COUNT_WINDOW_NS,
            }
        ),
    ],
    dtype=np.int64,
)
_N_OFF: Final = _OFFSETS.size
_OFFSETS_COL: Final = _OFFSETS[:, None]
assert _OFFSETS[-1] == HORIZONS_NS
assert VWAP_WINDOWS_NS == TFI_WINDOWS_NS == RETURN_HORIZONS_NS == tuple(_OFFSETS[1:].tolist())
assert tuple(_OFFSETS[-len(RV_WINDOWS_NS) :].tolist()) == RV_WINDOWS_NS
_COUNT_AT: Final = _OFFSETS.tolist().index(COUNT_WINDOW_NS)
_N_RV: Final = len(RV_WINDOWS_NS)
_RV_FROM: Final = _N_OFF - 1 - _N_RV  # first RV row among the lookback rows 1..


def _rows(names: list[str]) -> slice:
    at = [FEATURES.index(n) for n in names]
    assert at == list(range(at[0], at[0] + len(at)))
    return slice(at[0], at[-1] + 1)


_BOOK_ROWS: Final = _rows(["spread_bps", *(f"imbalance_{d}" for d in IMBALANCE_DEPTHS)])
assert slice(0, 4) == _BOOK_ROWS
assert FEATURES[4] == "microprice_dev_bps"
_VWAP: Final = _rows([f"vwap_dev_bps_{_suffix(w)}" for w in VWAP_WINDOWS_NS])
_TFI: Final = _rows([f"trade_flow_imbalance_{_suffix(w)}" for w in TFI_WINDOWS_NS])
_RET: Final = _rows([f"return_bps_{_suffix(h)}" for h in RETURN_HORIZONS_NS])
_RV: Final = _rows([f"realised_vol_bps_{_suffix(w)}" for w in RV_WINDOWS_NS])
assert _RET.stop == _RV.start  # returns and realised vols are scaled in one call
_COUNT: Final = FEATURES.index(f"log1p_trades_{_suffix(COUNT_WINDOW_NS)}")
_OK: Final = FEATURES.index("book_ok")
_SPREAD: Final = FEATURES.index("spread_bps")
_IMB: Final = [FEATURES.index(f"imbalance_{d}") for d in IMBALANCE_DEPTHS]
_MICRO: Final = FEATURES.index("microprice_dev_bps")
_RET_COLS: Final = list(range(_RET.start, _RET.stop))
_RV_COLS: Final = list(range(_RV.start, _RV.stop))
_VWAP_COL_OF: Final = dict(zip(VWAP_WINDOWS_NS, range(_VWAP.start, _VWAP.stop), strict=True))
_TFI_COL_OF: Final = dict(zip(TFI_WINDOWS_NS, range(_TFI.start, _TFI.stop), strict=True))

# FEAT_V1 seen through a view whose "head" takes the 40 leading bytes of BOOK_V1 (BOOK_VIEW's
# "head": seq, ts_event_ns, ts_recv_ns, ts_pub_ns -> ts_feat_ns, symbol_id + flags) in one go
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
_HEAD: Final = ("<i8", (5,))
_FEAT_VIEW: Final = np.dtype(
    {
        "names": ["head", "ts_feat_ns", "flags", "mid", "x"],
        "formats": [_HEAD, "<i8", "<u4", "<f8", ("<f4", (N_FEATURES,))],
        "offsets": [0, 24, 36, 40, int(_F["x"][1])],
        "itemsize": FEAT_V1.itemsize,
    }
)
_TRADE_VIEW: Final = np.dtype(
    {
        "names": ["ts_recv_ns", "side", "px_qty"],
        "formats": ["<i8", "<i1", ("<f8", (2,))],
        "offsets": [16, 36, 40],
        "itemsize": TRADE_V1.itemsize,
    }
)
_TF: Final = TRADE_V1.fields
assert _TF is not None
assert (_TF["ts_recv_ns"][1], _TF["side"][1], _TF["px"][1]) == (16, 36, 40)
assert _TF["qty"][1] == 48


def feature_index(name: str) -> int:
    """Return the slot of ``name`` in ``FEAT_V1.x``; raise KeyError for an unknown name."""
    try:
        return FEATURES.index(name)
    except ValueError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}") from None
