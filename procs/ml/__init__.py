"""Offline ML: labels, datasets from captures, training and ONNX export (never on the hot path)."""

from __future__ import annotations
