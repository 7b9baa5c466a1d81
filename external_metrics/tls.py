"""Serving certificates and TLS contexts."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def self_signed(sans: list[str], cn: str = "dynamo-scaling-metrics-server", days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed serving certificate (PEM cert, PEM key) for `sans` (DNS names or IPs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    names: list[x509.GeneralName] = []
    for s in dict.fromkeys(sans):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            names.append(x509.DNSName(s))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class ServingCert:
    """The serving certificate files: given, or generated into a private temporary directory."""

    def __init__(self, cert_file: Path | None, key_file: Path | None, sans: list[str]) -> None:
        self._tmp: tempfile.TemporaryDirectory | None = None
        if cert_file and key_file:
            self.cert_file, self.key_file, self.generated = Path(cert_file), Path(key_file), False
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="dynamo-metrics-tls-")
            cert, key = self_signed(["localhost", "127.0.0.1", *sans])
            d = Path(self._tmp.name)
            self.cert_file, self.key_file, self.generated = d / "tls.crt", d / "tls.key", True
            self.cert_file.write_bytes(cert)
            self.key_file.touch(mode=0o600)
            self.key_file.write_bytes(key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert_file.read_bytes()

    def server_context(self, client_ca_pem: bytes | None) -> ssl.SSLContext:
        """TLS 1.2+; client certificates are requested (and verified against `client_ca_pem`)
        but optional, so health probes work and a missing certificate is answered with 401."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        if client_ca_pem:
            ctx.load_verify_locations(cadata=client_ca_pem.decode())
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def close(self) -> None:
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None
