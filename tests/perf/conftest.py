"""Benchmarks print figures and assert nothing about wall time. They are not
part of `make test`: run them with `make bench` (ECOM_BENCH=1)."""

import os

if not os.environ.get("ECOM_BENCH"):
    collect_ignore_glob = ["*.py"]
