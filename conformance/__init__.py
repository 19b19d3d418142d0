"""Conformance: our requirement-keyed tests, and a runner for the ADL suite."""
