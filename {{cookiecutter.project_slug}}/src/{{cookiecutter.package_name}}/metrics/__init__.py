"""Prometheus metrics of this service."""
