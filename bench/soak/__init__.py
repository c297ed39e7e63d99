"""`make soak`: the stack under load while its parts fail (see bench/soak/run.py)."""
