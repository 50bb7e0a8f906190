"""Inference process: ring ``feat`` in, ring ``sig`` out; ONNX models with fallback and reload.

``model.py`` is the only importer of onnxruntime; importing this package does not load it.
"""

from __future__ import annotations

from procs.models.config import InferenceConfig
from procs.models.stage import InferenceMetrics, InferenceProc, make_metrics

__all__ = ["InferenceConfig", "InferenceMetrics", "InferenceProc", "make_metrics"]
