"""``python -m shoal.agent ...``: the lean way to run the agent (what a systemd unit should use).

Same options as ``shoal agent``, without loading the rest of the CLI, typer or pydantic. httpx's optional command
line tool (which pulls in rich, pygments and click: ~20 MB) is kept out of the process; httpx
falls back to its stub when that submodule cannot be imported.
"""

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from shoal.agent.run import main  # noqa: E402

sys.exit(main(sys.argv[1:], prog="python -m shoal.agent"))
