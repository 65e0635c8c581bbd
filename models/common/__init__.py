"""What every network's tools share: the errors (``errors``), file writing and hashing
(``files``), the shipped weights (``shipped``), the ONNX Runtime session (``runtime``), and,
offline only, the checkpoint format (``checkpoint``) and the ONNX exporter (``onnx_export``)."""
