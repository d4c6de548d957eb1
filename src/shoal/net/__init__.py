"""Pod networking on a node: CNI-wired pod sandboxes, the node's conflist and host-gw routes.

Agent-side only: nothing here imports the server, API, store or web framework. pyroute2 is
imported lazily by ``routes`` so an agent that does not route pays nothing for it.
"""

from shoal.net.cni import CniError, CniInvoker, ConflistError, NetworkConfigList, RuntimeConf, load_conflist
from shoal.net.conflist import BRIDGE_NAME, NETWORK_NAME, render_conflist, write_conflist
from shoal.net.fake import FakePodNetwork
from shoal.net.protocol import Bandwidth, NetworkError, PodSandboxNetwork, PortMapping, SandboxNetwork
from shoal.net.result import CniResult, ResultError, parse_result
from shoal.net.routes import ROUTE_PROTOCOL, HostRoutes, RouteError, RoutePlan, plan_routes
from shoal.net.sandbox import DEFAULT_NETNS_DIR, PodNetwork

__all__ = [
    "BRIDGE_NAME",
    "DEFAULT_NETNS_DIR",
    "NETWORK_NAME",
    "ROUTE_PROTOCOL",
    "Bandwidth",
    "CniError",
    "CniInvoker",
    "CniResult",
    "ConflistError",
    "FakePodNetwork",
    "HostRoutes",
    "NetworkConfigList",
    "NetworkError",
    "PodNetwork",
    "PodSandboxNetwork",
    "PortMapping",
    "ResultError",
    "RouteError",
    "RoutePlan",
    "RuntimeConf",
    "SandboxNetwork",
    "load_conflist",
    "parse_result",
    "plan_routes",
    "render_conflist",
    "write_conflist",
]
