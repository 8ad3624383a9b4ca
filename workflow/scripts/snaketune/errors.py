"""The errors snaketune raises for people to read."""

from __future__ import annotations


class ConfigError(ValueError):
    """A study configuration is invalid; the message names the key and what would be valid."""


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file, column or class."""
