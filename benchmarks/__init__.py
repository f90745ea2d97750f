"""Benchmarks for handprop: one training step against its peers, and whole-process timing.

``python -m benchmarks.step`` times one step of the tutorial's network;
``python -m benchmarks.process`` times ``handprop warmup`` against the tutorial's script.
See ``benchmarks/README.md``.
"""
