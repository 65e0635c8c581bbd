"""The depth generator: its network, training, export, weight averaging and ONNX Runtime inference.

``runtime`` is on the live path and never imports torch; the other modules are offline.
"""
