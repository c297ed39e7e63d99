"""Benchmarks of the turn pipeline against its floors (`make bench`, `python -m bench`).

- `run`: the entry point; starts everything, runs the phases, writes bench/results/.
- `stack`: the full stack as `make run` starts it (devtools/devstack.py's plan), and the
  minimal pipeline's processes.
- `loadgen`: the Socket.IO load generator (asyncio, python-socketio's AsyncClient).
- `floors`: the bare `openai` floor (scripted LLM straight to the client).
- `minimal_pipeline`: POST -> Celery -> LLM -> emit -> client and nothing else.
- `resend_load`: thousands of unacknowledged messages and how late their resends run.
- `procs`: child processes and their CPU and memory, sampled with psutil.
- `report`: the JSON, markdown table and PNG plots.
"""
