"""Cookiecutter hooks; importable so the template's suite can test their pure functions."""
