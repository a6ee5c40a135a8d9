"""Benchmarks of the CNN library and the server; run from a checkout, never shipped in the wheel.

``make bench`` runs them all; each module's ``main`` has its own ``--help``.
"""
