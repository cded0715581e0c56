"""A throwaway CA and a server certificate for 127.0.0.1, as a self-signed PVE node has."""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class SimTls:
    context: ssl.SSLContext
    ca_file: Path
    fingerprint: str  # SHA-256 of the server certificate, AA:BB:... as PVE shows it
    directory: tempfile.TemporaryDirectory

    def cleanup(self) -> None:
        self.directory.cleanup()


def make_tls() -> SimTls:
    ca = trustme.CA(organization_name="pvetop simulated cluster")
    leaf = ca.issue_cert("127.0.0.1", "localhost", common_name="pvetop-sim")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    directory = tempfile.TemporaryDirectory(prefix="pvetop-sim-")
    ca_file = Path(directory.name) / "pvetop-sim-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return SimTls(context, ca_file, fingerprint, directory)
