"""A SIP phone that answers and has ears: it takes one call on a UDP port (after sipp
registered that port as an agent's contact, or Asterisk rang it as a customer's handset),
streams PCMU (silence, or a 1 kHz tone while `talking`) and counts the loud frames it
receives, so a test can tell who hears whom. Keys go both ways as RFC 4733 telephone-events
when Asterisk offers them.

sipp cannot tell what audio it received; the bench UAC only places calls.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import struct
import uuid

from bench.uac import _KEY_CODES, _KEY_FRAMES, Message, _branch, _message, parse, sdp_media

_FRAME = 160  # 20 ms at 8 kHz
_KEYS = {code: key for key, code in _KEY_CODES.items()}
_LOUD = 300.0  # RMS of a frame (16-bit scale) above which something is heard


def _ulaw_decode(byte: int) -> int:
    u = ~byte & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _ulaw_encode(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = max(0, sample.bit_length() - 8)
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


_DECODED = [_ulaw_decode(b) for b in range(256)]
_SILENCE = bytes([0xFF]) * _FRAME
_TONE = bytes(_ulaw_encode(int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)))
              for i in range(_FRAME))  # a whole number of periods: frames join smoothly


def rms(payload: bytes) -> float:
    return math.sqrt(sum(_DECODED[b] ** 2 for b in payload) / max(1, len(payload)))


class MediaPhone(asyncio.DatagramProtocol):
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.talking = False
        self.loud = 0  # loud frames received since the last mark()
        self.frames = 0  # every frame received
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self._heard = asyncio.Event()
        self._want = 0
        self._hush = asyncio.Event()
        self._still = 0  # quiet frames received in a row
        self._want_still = 0
        self._sip: asyncio.DatagramTransport | None = None
        self._rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rtp.bind((host, 0))
        self._rtp.setblocking(False)
        self._invite: Message | None = None
        self._server: tuple[str, int] | None = None
        self._media: tuple[str, int] | None = None
        self._tag = uuid.uuid4().hex[:10]
        self._tasks: list[asyncio.Task[None]] = []
        self._event_pt: int | None = None  # telephone-event, if the offer had it
        self._pressing: list[tuple[str, asyncio.Future[None]]] = []
        self.keys: list[str] = []  # keys received (RFC 4733), in order
        self.requests: list[str] = []  # SIP methods received: re-INVITEs, when audio stops
        self._key_ends: set[int] = set()  # timestamps of the keys in `keys`
        self._got_key = asyncio.Event()

    async def open(self) -> MediaPhone:
        loop = asyncio.get_running_loop()
        self._sip, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port))
        loop.add_reader(self._rtp.fileno(), self._on_rtp)
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        asyncio.get_running_loop().remove_reader(self._rtp.fileno())
        self._rtp.close()
        if self._sip is not None:
            self._sip.close()

    # --- ears -----------------------------------------------------------------------

    def mark(self) -> None:
        self.loud = 0

    async def hears(self, frames: int = 25, timeout: float = 10.0) -> None:
        """Returns once `frames` loud frames arrived since the last mark()."""
        self._want = frames
        self._heard.clear()
        before = self.frames
        if self.loud < frames:
            try:
                await asyncio.wait_for(self._heard.wait(), timeout)
            except TimeoutError:
                raise AssertionError(f"port {self.port} heard {self.loud} loud frames of "
                                     f"{self.frames - before} in {timeout:g}s (SIP requests: "
                                     f"{' '.join(self.requests)})") from None

    async def quiet(self, frames: int = 10, timeout: float = 10.0) -> None:
        """Returns once `frames` quiet frames arrived in a row: what was on its way is in."""
        self._want_still = frames
        self._hush.clear()
        try:
            await asyncio.wait_for(self._hush.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"port {self.port} never heard {frames} quiet frames in a "
                                 f"row in {timeout:g}s ({self.loud} loud)") from None

    async def hears_key(self, key: str, timeout: float = 10.0) -> None:
        """Returns once `key` arrived as a telephone-event."""
        while key not in self.keys:
            self._got_key.clear()
            try:
                await asyncio.wait_for(self._got_key.wait(), timeout)
            except TimeoutError:
                raise AssertionError(f"port {self.port} never got key {key} in {timeout:g}s "
                                     f"(got {self.keys})") from None

    def _on_event(self, data: bytes) -> None:
        code, flags, _ = struct.unpack("!BBH", data[12:16])
        stamp = struct.unpack("!I", data[4:8])[0]
        if flags & 0x80 and stamp not in self._key_ends:  # its end, once (sent 3 times)
            self._key_ends.add(stamp)
            self.keys.append(_KEYS.get(code, "?"))
            self._got_key.set()

    def _on_rtp(self) -> None:
        try:
            data = self._rtp.recv(2048)
        except BlockingIOError:
            return
        if len(data) <= 12:
            return
        if data[1] & 0x7F != 0:  # not PCMU
            if data[1] & 0x7F == self._event_pt and len(data) >= 16:
                self._on_event(data)
            return
        self.frames += 1
        if rms(data[12:]) > _LOUD:
            self.loud += 1
            self._still = 0
            if self.loud >= self._want:
                self._heard.set()
        else:
            self._still += 1
            if self._want_still and self._still >= self._want_still:
                self._hush.set()

    # --- mouth -----------------------------------------------------------------------

    async def press(self, key: str) -> None:
        """One key as RFC 4733 telephone-events, as bench.uac presses it: held 100 ms in
        place of the voice frames, then its end three times. Returns once it is sent."""
        assert self._event_pt is not None, "the call has no telephone-event"
        done = asyncio.get_running_loop().create_future()
        self._pressing.append((key, done))
        await done

    async def _stream(self) -> None:
        seq, stamp, ssrc = 0, 0, int.from_bytes(os.urandom(4), "big")
        loop = asyncio.get_running_loop()
        due = loop.time()
        key_at, held = 0, 0  # the pressed key's timestamp, and for how many frames
        while not self.ended.is_set():
            assert self._media is not None
            if self._pressing:
                key, done = self._pressing[0]
                key_at, held = (key_at, held + 1) if held else (stamp, 1)
                end = held > _KEY_FRAMES
                for _ in range(3 if end else 1):
                    header = struct.pack("!BBHII", 0x80, (0x80 if held == 1 else 0) |
                                         (self._event_pt or 0), seq & 0xFFFF,
                                         key_at & 0xFFFFFFFF, ssrc)
                    event = struct.pack("!BBH", _KEY_CODES[key], (0x80 if end else 0) | 10,
                                        min(held, _KEY_FRAMES) * _FRAME)
                    self._rtp.sendto(header + event, self._media)
                    seq += 1
                if end:
                    self._pressing.pop(0)
                    held = 0
                    if not done.done():
                        done.set_result(None)
            else:
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, stamp & 0xFFFFFFFF, ssrc)
                self._rtp.sendto(header + (_TONE if self.talking else _SILENCE), self._media)
                seq += 1
            stamp, due = stamp + _FRAME, due + 0.02
            await asyncio.sleep(max(0.0, due - loop.time()))

    # --- SIP ------------------------------------------------------------------------

    async def hangup(self) -> None:
        invite, server = self._invite, self._server
        assert invite is not None and server is not None and self._sip is not None
        contact = invite.get("contact").strip("<>").split(">")[0]
        headers = [f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={_branch()}",
                   f"From: {invite.get('to')};tag={self._tag}", f"To: {invite.get('from')}",
                   f"Call-ID: {invite.get('call-id')}", "CSeq: 1 BYE", "Max-Forwards: 70"]
        self._sip.sendto(_message(f"BYE {contact} SIP/2.0", headers), server)
        self.ended.set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse(data)
        method = msg.first.split(" ", 1)[0]
        if msg.first.startswith("SIP/2.0"):
            return  # the answer to our BYE
        self.requests.append(method)
        if method == "INVITE":
            if self._invite is None or msg.get("call-id") == self._invite.get("call-id"):
                self._invite, self._server = msg, addr
                self._media = sdp_media(msg.body)
                self._event_pt = next((int(line.split(":")[1].split()[0])
                                       for line in msg.body.splitlines()
                                       if line.startswith("a=rtpmap:") and
                                       "telephone-event/8000" in line), None)
                self._reply(msg, addr, 200, self._sdp())
                if not self.answered.is_set():
                    self.answered.set()
                    self._tasks.append(asyncio.create_task(self._stream()))
            else:
                self._reply(msg, addr, 486)  # busy: one call at a time
        elif method == "BYE":
            self._reply(msg, addr, 200)
            self.ended.set()
        elif method in ("OPTIONS", "CANCEL"):
            self._reply(msg, addr, 200)
            if method == "CANCEL":
                self.ended.set()

    def _sdp(self) -> str:
        port, pt = self._rtp.getsockname()[1], self._event_pt
        events = [] if pt is None else [f"a=rtpmap:{pt} telephone-event/8000",
                                        f"a=fmtp:{pt} 0-16"]
        return "\r\n".join(["v=0", f"o=- 1 1 IN IP4 {self.host}", "s=-",
                            f"c=IN IP4 {self.host}", "t=0 0",
                            f"m=audio {port} RTP/AVP 0{'' if pt is None else f' {pt}'}",
                            "a=rtpmap:0 PCMU/8000", *events, "a=sendrecv", ""])

    def _reply(self, request: Message, addr: tuple[str, int], status: int,
               sdp: str = "") -> None:
        assert self._sip is not None
        reason = {200: "OK", 486: "Busy Here"}[status]
        to = request.get("to")
        headers = [f"Via: {v}" for v in request.all("via")]
        headers += [f"From: {request.get('from')}",
                    f"To: {to}" if "tag=" in to else f"To: {to};tag={self._tag}",
                    f"Call-ID: {request.get('call-id')}", f"CSeq: {request.get('cseq')}",
                    f"Contact: <sip:phone@{self.host}:{self.port}>"]
        if sdp:
            headers.append("Content-Type: application/sdp")
        self._sip.sendto(_message(f"SIP/2.0 {status} {reason}", headers, sdp), addr)
