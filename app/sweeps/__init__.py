"""The sweep view: a sweep's trials live, and what they found (engine.sweep.results)."""
