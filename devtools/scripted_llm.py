"""`python -m devtools.scripted_llm`: the offline scripted LLM under the name that
docker-compose.yml's `offline` profile runs.

Placeholder until the layout pass (issue 15) moves common/scripted_llm.py here: on that
merge this file is replaced by the module itself.
"""

import sys

from common.scripted_llm import *  # noqa: F403  (the module's public names, as after the move)
from common.scripted_llm import main

if __name__ == "__main__":
    sys.exit(main())
