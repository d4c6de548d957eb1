"""Server wiring: builds store, API, scheduler loop and controllers; owns their lifecycle."""

from shoal.server.main import ServerOptions, run, serve

__all__ = ["ServerOptions", "run", "serve"]
