"""The head-centre refiner: its network, training and export, and ONNX Runtime inference.

``runtime`` is on the live path and never imports torch; the other modules are offline.
"""
