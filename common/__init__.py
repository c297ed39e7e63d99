"""Code shared by the web nodes and the workers. Imports neither `web` nor `worker`."""
