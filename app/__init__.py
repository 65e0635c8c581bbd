"""The live app: a headless streaming pipeline and thin Qt views over it.

Only this package imports Qt and pyqtgraph, and nothing in it imports torch.
"""
