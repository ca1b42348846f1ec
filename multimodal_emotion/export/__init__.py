"""Exporters: write a model folder in another runtime's format (``mer export onnx``)."""
