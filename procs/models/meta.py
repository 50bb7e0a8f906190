"""Names the exported ONNX model and its readers agree on: input/output names, metadata keys.

Import-free on purpose (no numpy, no h5py, no sklearn): the inference process imports these
constants without pulling in the trainer's dependencies.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INPUT_NAME",
    "META_CREATED",
    "META_DATA_HASH",
    "META_DEADBAND",
    "META_FEATURES",
    "META_GATE",
    "META_HORIZON",
    "META_LINEAR",
    "META_PROMOTABLE",
    "META_SEED",
    "META_VERSION",
    "OUTPUT_NAME",
    "PROBA_NAME",
]

INPUT_NAME: Final = "x"
OUTPUT_NAME: Final = "score"
PROBA_NAME: Final = "probabilities"
# metadata_props keys of the exported model (inference reads these)
META_FEATURES: Final = "feature_names"  # JSON list, the order of the input columns
META_VERSION: Final = "model_version"
META_DATA_HASH: Final = "training_data_sha256"
META_HORIZON: Final = "label_horizon_s"
META_DEADBAND: Final = "label_deadband_bps"
META_CREATED: Final = "created_utc"
META_LINEAR: Final = "linear_params"  # JSON of procs.models.scoring.LinearScorer (numpy reference)
META_SEED: Final = "seed"
# the promotion gate (procs.ml.gate): "true" only when the model beat the rule-based scorer and a
# no-skill baseline on held-out data; inference will not make a champion of anything else
META_PROMOTABLE: Final = "promotable"
META_GATE: Final = "gate"  # JSON: {"promotable": bool, "reasons": [why not, ...]}
