"""WeChat's callback signatures and its "safe mode" message encryption.

Documented by WeChat (消息加解密说明): the signature is the hex SHA1 of the sorted,
concatenated token, timestamp, nonce (and, for `msg_signature`, the Encrypt field). The
AES key is base64(EncodingAESKey + "="), 32 bytes; AES-256-CBC with the key's first 16
bytes as IV over random(16) + len(msg) (4 bytes, network order) + msg + appid, padded
PKCS#7 to a multiple of 32 (not AES's 16), then base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ctl.errors import ConfigError, Unauthorized

_BLOCK = 32


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check(expected: str | None, *parts: str, what: str = "signature") -> None:
    if not expected:
        raise Unauthorized(f"wechat: the {what} is missing")
    if not hmac.compare_digest(expected.lower().encode(), signature(*parts).encode()):
        raise Unauthorized(f"wechat: the {what} does not match (wrong token or tampered)")


def aes_key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        key = b""
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise ConfigError("channels.wechat.encoding_aes_key must be WeChat's 43-character "
                          "EncodingAESKey")
    return key


class MessageCrypt:
    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        self._key = aes_key(encoding_aes_key)
        self._app_id = app_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, xml: str, random: bytes | None = None) -> str:
        msg = xml.encode()
        plain = (random or os.urandom(16)) + struct.pack(">I", len(msg)) + msg \
            + self._app_id.encode()
        pad = _BLOCK - len(plain) % _BLOCK
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain + bytes([pad]) * pad) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        """The XML inside `encrypted`; Unauthorized when it was not made with our key."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error:
            raise Unauthorized("wechat: Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise Unauthorized("wechat: Encrypt is not whole AES blocks")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad or len(plain) < 20 + pad:
            raise Unauthorized("wechat: Encrypt does not decrypt with our EncodingAESKey")
        body = plain[16:-pad]
        (size,) = struct.unpack(">I", body[:4])
        msg, app_id = body[4:4 + size], body[4 + size:]
        if len(msg) != size or app_id.decode(errors="replace") != self._app_id:
            raise Unauthorized("wechat: the encrypted message is for another app id "
                               f"({app_id[:40].decode(errors='replace')!r})")
        try:
            return msg.decode()
        except UnicodeDecodeError:
            raise Unauthorized("wechat: the decrypted message is not UTF-8") from None
