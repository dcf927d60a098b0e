"""Plain-Python twins of the compiled code, kept together: slow, obviously correct, for tests and
baselines."""
