"""The face verifier: its network, training, export, the pair protocol and ONNX Runtime scoring.

``runtime`` and ``pairs`` are on the live path and never import torch; the other modules are offline.
"""
