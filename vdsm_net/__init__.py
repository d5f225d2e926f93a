"""vdsm-net agent: owns a hypervisor host's virtual networking over netlink."""

__version__ = "0.1.0"
API_VERSION = "4.7"
