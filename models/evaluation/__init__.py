"""Offline evaluation: generators and baselines on a crop dataset, and head localisation.
"""
