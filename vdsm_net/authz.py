"""Who may call the agent over TCP, beyond a certificate signed by the CA (docs/config.md).

Mutual TLS proves that a client holds a certificate of the cluster's CA; every host holds one
too. So the agent also asks what the certificate is *for*: only one whose extended key usage
names clientAuth may call it (``engine-client pki issue --role engine``; host certificates are
serverAuth only), and when ``[tls] allowed_clients`` lists names, only one whose common name
or a subject alternative name is among them.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def certificate_names(cert: x509.Certificate) -> list[str]:
    """Common name(s), then DNS, IP and URI subject alternative names, as text."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    names += san.get_values_for_type(x509.DNSName)
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    return names


def _has_client_auth(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False  # no stated purpose is not a client's purpose
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage


class ClientPolicy:
    """Mutable on purpose: SIGHUP replaces ``allowed`` while the listener runs."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed: frozenset[str] = frozenset(allowed)

    def refusal(self, der: bytes | None) -> str | None:
        """None when the client (its certificate, DER) may call the agent, else why not."""
        if der is None:
            return "no client certificate"
        cert = x509.load_der_x509_certificate(der)
        names = certificate_names(cert)
        who = f"certificate {names[0] if names else cert.subject.rfc4514_string()!r}"
        if not _has_client_auth(cert):
            return f"{who} is not for client authentication (no extended key usage clientAuth)"
        if self.allowed and self.allowed.isdisjoint(names):
            return (f"{who} (names {', '.join(names) or 'none'}) is not in [tls] allowed_clients "
                    f"({', '.join(sorted(self.allowed))})")
        return None
