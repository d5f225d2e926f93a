"""DHCPv4 for the agent: a client in the event loop (client.py), its lease and lease file
(lease.py), and the default way to put a lease into the kernel (install.py)."""

from vdsm_net.dhcp.client import DhcpClient, DhcpTiming, LeaseChange, LeaseEvent, LeaseHandler
from vdsm_net.dhcp.install import KernelLeaseInstaller
from vdsm_net.dhcp.lease import DhcpLease, LeaseFile

__all__ = [
    "DhcpClient",
    "DhcpLease",
    "DhcpTiming",
    "KernelLeaseInstaller",
    "LeaseChange",
    "LeaseEvent",
    "LeaseFile",
    "LeaseHandler",
]
