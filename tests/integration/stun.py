"""A STUN and TURN server just large enough for tests (RFC 5389, RFC 5766 over UDP): it
answers Binding requests with the sender's address, and asks each Allocate for the TURN
REST long-term credentials, checks their MESSAGE-INTEGRITY against the shared secret,
then refuses the allocation (403). A test learns whether a browser used the ICE servers
it was given, and with which credentials, without relaying any media."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass, field
from typing import cast

MAGIC = 0x2112A442
BINDING, ALLOCATE = 0x0001, 0x0003
USERNAME, INTEGRITY, ERROR_CODE = 0x0006, 0x0008, 0x0009
REALM, NONCE, XOR_MAPPED = 0x0014, 0x0015, 0x0020
SUCCESS, ERROR = 0x0100, 0x0110


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _attrs(body: bytes) -> tuple[dict[int, bytes], dict[int, int]]:
    """Attributes by type, and where each starts in the message (for the integrity)."""
    found: dict[int, bytes] = {}
    where: dict[int, int] = {}
    i = 0
    while i + 4 <= len(body):
        kind, size = struct.unpack("!HH", body[i:i + 4])
        found.setdefault(kind, body[i + 4:i + 4 + size])
        where.setdefault(kind, 20 + i)
        i += 4 + size + (-size % 4)
    return found, where


def _integrity(message: bytes, key: bytes) -> bytes:
    """HMAC-SHA1 over `message` with its length counting the integrity attribute."""
    head = message[:2] + struct.pack("!H", len(message) - 20 + 24) + message[4:]
    return hmac.new(key, head, hashlib.sha1).digest()


@dataclass
class StunTurn(asyncio.DatagramProtocol):
    secret: str
    realm: str = "ctl-test"
    bindings: int = 0
    # (username, whether its MESSAGE-INTEGRITY was right) for each authenticated Allocate
    allocations: list[tuple[str, bool]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 20:
            return
        kind, size, magic = struct.unpack("!HHI", data[:8])
        if magic != MAGIC:
            return
        tid, (attrs, where) = data[8:20], _attrs(data[20:20 + size])
        if kind == BINDING:
            self.bindings += 1
            self._send(kind | SUCCESS, tid, _xor_address(str(addr[0]), int(addr[1])), addr)
        elif kind == ALLOCATE and USERNAME not in attrs:
            self._send(kind | ERROR, tid, _error(401, "Unauthorized")
                       + _attr(REALM, self.realm.encode())
                       + _attr(NONCE, os.urandom(8).hex().encode()), addr)
        elif kind == ALLOCATE:
            user = attrs[USERNAME].decode()
            password = base64.b64encode(hmac.new(self.secret.encode(), user.encode(),
                                                 hashlib.sha1).digest()).decode()
            # RFC 5389's long-term key (MD5 is the protocol's choice)
            key = hashlib.md5(f"{user}:{self.realm}:{password}".encode()).digest()
            signed = INTEGRITY in attrs and hmac.compare_digest(
                _integrity(data[:where[INTEGRITY]], key), attrs[INTEGRITY])
            self.allocations.append((user, signed))
            self._send(kind | ERROR, tid, _error(403, "Forbidden"), addr, key)

    def _send(self, kind: int, tid: bytes, body: bytes, addr: tuple[str | int, ...],
              key: bytes | None = None) -> None:
        message = struct.pack("!HHI", kind, len(body), MAGIC) + tid + body
        if key is not None:  # a response to a signed request is signed too
            message = message[:2] + struct.pack("!H", len(body) + 24) + message[4:]
            message += _attr(INTEGRITY, _integrity(message[:20 + len(body)], key))
        assert self.transport is not None
        self.transport.sendto(message, addr)


def _error(code: int, reason: str) -> bytes:
    return _attr(ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode())


def _xor_address(host: str, port: int) -> bytes:
    ip = int(ipaddress.IPv4Address(host))
    return _attr(XOR_MAPPED, struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), ip ^ MAGIC))


async def serve(secret: str, port: int) -> tuple[StunTurn, asyncio.DatagramTransport]:
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: StunTurn(secret), local_addr=("127.0.0.1", port))
    return server, transport
