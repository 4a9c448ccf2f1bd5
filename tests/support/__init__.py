"""Helpers for od_guard's own tests and benchmarks: not part of the wheel.

Modules here are imported as `support.<module>` from tests (tests/ is on the path) and as
`tests.support.<module>` from benchmarks and examples run from the repository root.
"""
