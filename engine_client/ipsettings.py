"""An attachment's own IP settings (docs/engine-cli.md "Addresses"): read from the command
line's ``--ip ADDR/PREFIX [--gateway IP] | --dhcp``, and turned into the attributes of the
host's ``setupNetworks`` entry (docs/api.md: ``ipaddr``/``prefix``/``gateway``,
``ipv6addr``/``ipv6gateway``, ``bootproto``).

Every refusal is a ``NetError`` naming the option and the value, before anything is written
or sent. The agent checks the attributes again (the same rules, its own messages).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from engine_client.models import NO_IP, IpSettings
from vdsm_net.errors import ErrorKind, NetError

IP_HELP = "ADDR/PREFIX (e.g. 10.0.0.5/24 or 2001:db8::5/64)"

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _bad(message: str) -> NetError:
    return NetError(ErrorKind.BAD_ADDR, message)


def _interface(text: str) -> Interface:
    if "/" not in text or "%" in text:
        raise _bad(f"--ip: expected {IP_HELP}, got {text!r}")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise _bad(f"--ip: expected {IP_HELP}, got {text!r}") from None
    ip = iface.ip
    # The agent refuses these too (docs/api.md, error 22): say so before any host is asked.
    unusable = ip.is_unspecified or ip.is_multicast or ip.is_loopback
    if unusable or (ip.version == 6 and ip.is_link_local):
        raise _bad(f"--ip: {ip} cannot be a host's static address, got {text!r}")
    if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        raise _bad(f"--ip: {ip} cannot be a host's static address, got {text!r}")
    net = iface.network
    if (
        net.version == 4
        and net.prefixlen < 31
        and ip in (net.network_address, net.broadcast_address)
    ):
        what = "network" if ip == net.network_address else "broadcast"
        raise _bad(f"--ip: {ip} is the {what} address of {net}, not a host's, got {text!r}")
    return iface


def _gateway(text: str, iface: Interface) -> str:
    try:
        gateway = ipaddress.ip_address(text)
    except ValueError:
        raise _bad(f"--gateway: expected an IP address, got {text!r}") from None
    if gateway.version != iface.version:
        raise _bad(
            f"--gateway: an IPv{gateway.version} gateway {text!r} for the IPv{iface.version} "
            f"--ip {iface.with_prefixlen}; give a gateway of the address's family"
        )
    if gateway == iface.ip:
        raise _bad(f"--gateway: {text!r} is the host's own --ip address")
    # The kernel refuses a route through a gateway off every local subnet ("Nexthop has
    # invalid gateway"): the host would fail and roll back, so say it here. An IPv6 router is
    # often named by its link-local address, which is on every link.
    if gateway not in iface.network and not (gateway.version == 6 and gateway.is_link_local):
        raise _bad(
            f"--gateway: {text!r} is not in the subnet of --ip {iface.with_prefixlen} "
            f"({iface.network})"
        )
    return gateway.compressed


def parse(ip: str | None, gateway: str | None, dhcp: bool) -> IpSettings:
    """The settings the options ask for (none when none is given)."""
    if dhcp and ip is not None:
        raise _bad(f"--dhcp: conflicts with --ip {ip!r}; give one of them")
    if gateway is not None and ip is None:
        reason = "DHCP brings its own" if dhcp else "give --ip ADDR/PREFIX with it"
        raise _bad(f"--gateway: {gateway!r} needs a static --ip ({reason})")
    if dhcp:
        return IpSettings("dhcp")
    if ip is None:
        return NO_IP
    iface = _interface(ip)
    # Normal form, as the kernel reports it back (``ip -j addr``: compressed IPv6).
    address = f"{iface.ip.compressed}/{iface.network.prefixlen}"
    return IpSettings("static", address, None if gateway is None else _gateway(gateway, iface))


def setup_attrs(ip: IpSettings) -> dict[str, Any]:
    """The ``setupNetworks`` attributes of ``ip`` (none for ``none``: a network entry replaces
    the network's whole definition, so left out means no address)."""
    if ip.method == "dhcp":
        return {"bootproto": "dhcp"}
    if ip.address is None:
        return {}
    addr, prefix = ip.address.split("/")
    if ip.family == 6:
        attrs: dict[str, Any] = {"ipv6addr": ip.address}
        if ip.gateway is not None:
            attrs["ipv6gateway"] = ip.gateway
        return attrs
    attrs = {"ipaddr": addr, "prefix": int(prefix)}
    if ip.gateway is not None:
        attrs["gateway"] = ip.gateway
    return attrs
