"""The xAPI protocol: pure functions and types, no I/O."""
