"""A standalone xAPI Learning Record Store on PostgreSQL."""

__version__ = "0.1.0"
