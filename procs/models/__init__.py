"""Models: ONNX loading and metadata, the rule scorer, and the checks on a model's output.

``model.py`` is the only importer of onnxruntime; importing this package does not load it.
"""
