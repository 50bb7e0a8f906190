"""Errors of the inference package, and what a loaded model says about itself.

Kept apart from ``model.py`` so that the process and its reloader need not import onnxruntime::

    ModelError               base of every error raised by procs.inference
    ├── ModelLoadError       unreadable file, not ONNX, or the wrong inputs/outputs
    ├── ModelMetadataError   metadata missing or not matching this build (feature names, version)
    └── ModelNotPromotableError  a sound model that did not pass the promotion gate (champion only)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ModelError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMetadataError",
    "ModelNotPromotableError",
]


class ModelError(Exception):
    """Base error of the inference model wrapper."""


class ModelLoadError(ModelError):
    """The file cannot be read or run as a signal model (not ONNX, wrong inputs or outputs)."""


class ModelMetadataError(ModelError):
    """The model's metadata is missing or does not match this build."""


class ModelNotPromotableError(ModelError):
    """The model's metadata says it failed the promotion gate, or carries no gate verdict."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What a loaded model says about itself, and the file it came from."""

    source: str
    file_sha256: str
    version: int
    data_sha256: str
    feature_names: tuple[str, ...]
    horizon_s: float | None
    promotable: bool | None = None  # the promotion gate's verdict; None: the model has none
    gate_reasons: tuple[str, ...] = ()  # why it is not promotable, as the trainer wrote it
