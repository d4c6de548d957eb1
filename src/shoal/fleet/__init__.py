"""Local fleets for development, demos and tests: ``shoal cluster up|down`` runs a server and N
agents on this machine, each agent in its own network namespace joined by a bridge."""

__all__: list[str] = []
