"""Spark jobs: streaming analytics, ALS training, serviceability precompute.
"""
