"""Projects with many scheduled reports, for the scheduler's tests and benchmark.

Built from data in the tests (tests/projects.py), never from the shipped reports.toml.
"""

from __future__ import annotations

from projects import make_project, report_block

__all__ = ["make_project", "report_block"]
