"""Benchmarks of the running bot against the emulated Bot API (SPEC §9); not timed tests."""
