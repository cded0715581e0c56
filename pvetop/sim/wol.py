"""The wake-on-LAN side: a UDP listener on loopback that boots nodes on magic packets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAGIC_PREFIX = b"\xff" * 6


def parse_magic_packet(data: bytes) -> str | None:
    """The MAC in a 102-byte magic packet (6 x FF then the MAC 16 times), else None."""
    if len(data) != 102 or not data.startswith(MAGIC_PREFIX):
        return None
    mac = data[6:12]
    if data[6:] != mac * 16:
        return None
    return ":".join(f"{byte:02X}" for byte in mac)


class WolProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_mac: Callable[[str], object]):
        self.on_mac = on_mac

    def datagram_received(self, data: bytes, addr) -> None:
        mac = parse_magic_packet(data)
        if mac is not None:
            self.on_mac(mac)
