"""The REST edge: Envoy configuration generated from the descriptor set, and
the OpenAPI document.
"""
