"""Reliability suites: crash (SIGKILL and restart), faults on every link, bad inputs.

Each is a module run with ``python -m reliability.NAME`` that prints a table of figures and
exits 0 when every promise held; ``make reliability`` runs them all, and short versions run
in ``make test`` (tests/acceptance/test_reliability*.py).
"""
