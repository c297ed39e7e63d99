"""Development tooling: the local stack of `make run`, embedded PostgreSQL and Redis, the
scripted LLM and child-process handling. Used by tests, benchmarks and developers; never
imported by web/, worker/ or common/."""
