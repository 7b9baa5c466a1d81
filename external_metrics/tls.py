"""Serving certificates and TLS contexts, shared by the metrics server and the planner's API.
Given certificate files are re-read when they change (cert-manager renews them in place), so a
renewed certificate is served to new connections without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

# how often given certificate files are checked for a change; reading two small files is cheap
RELOAD_PERIOD_S = 2.0


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

    def __init__(self, cert_file: Path | None, key_file: Path | None, sans: list[str],
                 cn: str = "dynamo-scaling-metrics-server") -> None:
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._contexts: list[ssl.SSLContext] = []
        self._lock = threading.Lock()
        if cert_file and key_file:
            self.cert_file, self.key_file, self.generated = Path(cert_file), Path(key_file), False
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"{cn}-tls-")
            cert, key = self_signed(["localhost", "127.0.0.1", *sans], cn=cn)
            d = Path(self._tmp.name)
            self.cert_file, self.key_file, self.generated = d / "tls.crt", d / "tls.key", True
            self.cert_file.write_bytes(cert)
            self.key_file.touch(mode=0o600)
            self.key_file.write_bytes(key)
        self._loaded = self._fingerprint()
        self._pair = (self.cert_file.read_bytes(), self.key_file.read_bytes())

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
        self._contexts.append(ctx)
        return ctx

    def pair(self) -> tuple[bytes, bytes, str]:
        """(certificate PEM, key PEM, fingerprint) last loaded: a pair known to match, for servers
        that take the bytes rather than a context (gRPC)."""
        with self._lock:
            return self._pair[0], self._pair[1], self._loaded

    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in (self.cert_file, self.key_file):
            h.update(f.read_bytes())
            h.update(b"\0")
        return h.hexdigest()

    def reload(self) -> bool:
        """Load the files into every context made by server_context() if they changed since the
        last load. New handshakes get the new certificate; open connections keep theirs. A pair
        that does not load (e.g. the certificate replaced but not yet its key) is retried later
        and the certificate in use stays. Returns whether a new certificate was loaded."""
        with self._lock:
            try:
                seen = self._fingerprint()
            except OSError as exc:
                log.warning("cannot read the serving certificate files", extra={"error": str(exc)})
                return False
            if seen == self._loaded:
                return False
            try:
                # checked on a scratch context first: a failed load can leave a context half-changed
                pair = (self.cert_file.read_bytes(), self.key_file.read_bytes())
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(self.cert_file), str(self.key_file))
                for ctx in self._contexts:
                    ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (ssl.SSLError, OSError) as exc:
                log.warning("serving certificate changed but does not load; keeping the current one",
                            extra={"error": str(exc)})
                return False
            self._loaded, self._pair = seen, pair
            log.info("serving certificate reloaded", extra={"cert_file": str(self.cert_file)})
            return True

    async def follow(self, stop: asyncio.Event, period_s: float = RELOAD_PERIOD_S) -> None:
        """Reload on change until `stop` is set (asyncio servers)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), period_s)
                return
            except asyncio.TimeoutError:
                await asyncio.to_thread(self.reload)

    def follow_in_thread(self, stop: threading.Event, period_s: float = RELOAD_PERIOD_S) -> threading.Thread:
        """Reload on change until `stop` is set, from a daemon thread (threaded servers)."""
        def run() -> None:
            while not stop.wait(period_s):
                self.reload()

        thread = threading.Thread(target=run, name="tls-reload", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None
