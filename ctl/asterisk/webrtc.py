"""Agents' browser phones: their PJSIP WebRTC endpoints' names and credentials, and the
DTLS certificate Asterisk presents to browsers.

The browser's SIP password is never stored. It is derived from a key generated at install
(`Secrets.webrtc_key`) and the agent's desk-phone HA1: Asterisk's configuration holds
only its HA1, ctl recomputes the password for the logged-in agent who asks for it
(GET /api/v1/me/phone), and `ctl agents reset-password` (a new HA1) changes it too. So
there is no second secret to keep per agent, nothing to decrypt, and no reload of PJSIP
on every login.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REALM = "ctl"  # must match `realm` in asterisk-conf/pjsip_agents.conf.j2
# `agent-` names the desk phones; usernames never contain what would let one agent's
# browser endpoint collide with another's desk endpoint under a distinct prefix.
PREFIX = "webrtc-"
CERT, KEY = "dtls-cert.pem", "dtls-key.pem"  # under <data_dir>/asterisk/lib/keys


def endpoint(username: str) -> str:
    return PREFIX + username


def password(key: str, username: str, sip_ha1: str) -> str:
    mac = hmac.new(key.encode(), f"{endpoint(username)}\0{sip_ha1}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def ha1(key: str, username: str, sip_ha1: str) -> str:
    # MD5 is what SIP digest auth (RFC 2617) mandates; Asterisk stores only this hash.
    secret = f"{endpoint(username)}:{REALM}:{password(key, username, sip_ha1)}".encode()
    return hashlib.md5(secret, usedforsecurity=False).hexdigest()


def ensure_certificate(keys_dir: Path, gid: int | None) -> None:
    """A self-signed certificate for DTLS-SRTP, made once per installation. Browsers pin
    its fingerprint from the SDP (dtls_verify = fingerprint), so no CA is involved."""
    cert_path, key_path = keys_dir / CERT, keys_dir / KEY
    if cert_path.exists() and key_path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctl asterisk dtls")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(key_path, pem_key, gid)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), gid)


def _write(path: Path, data: bytes, gid: int | None) -> None:
    # The key is readable by Asterisk's group only, like the rendered configuration.
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if gid is not None:
        os.chown(tmp, 0, gid)
    os.replace(tmp, path)
