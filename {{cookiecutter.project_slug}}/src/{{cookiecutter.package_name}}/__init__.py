"""The service package: see README.md for what it does and how to run it."""

__version__ = "0.1.0"
