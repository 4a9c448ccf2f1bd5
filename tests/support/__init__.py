"""Helpers for od_guard's own tests and benchmarks: not part of the wheel.

Imported as `support.<module>`: pytest puts tests/ on the path (tests/conftest.py), and
the benchmarks put it there (benchmarks/harness.py on import; benchmarks/dashboard.py,
which does not use the harness, itself).
"""
