"""Models: the depth generator and the face verifier (training and export with PyTorch; inference
with ONNX Runtime), the metrics and the dataset builder.

Live-path modules (inference, metrics, verification scoring) never import torch; training and
export modules do, and only the offline commands load them.
"""
