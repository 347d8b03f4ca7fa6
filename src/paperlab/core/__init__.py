"""The shared core of paperlab: backends, cache, metrics, data, runs/reports/claims, CLI helpers.

Systems import from here and never from each other.
"""
