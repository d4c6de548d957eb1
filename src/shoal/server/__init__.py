"""Server wiring: builds store, API, scheduler loop and controllers; owns their lifecycle.

Entry points live in ``shoal.server.main`` (``serve``, ``run``) and ``shoal.server.cli``;
this package init imports nothing so that ``shoal server --help`` stays fast.
"""

__all__: list[str] = []
