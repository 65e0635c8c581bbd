"""Crop datasets: the file format and the command that builds one from any sources.
"""
