"""The webhook's connection limits (no imports: the CLI reads the defaults for its help)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    """Open connections (accepted sockets, handshaking or not)."""
    handshake_seconds: float = 5.0
    header_seconds: float = 10.0
    """From a connection's first byte (or the first byte after its last answer) to complete
    request headers."""
    body_seconds: float = 10.0
    body_bytes: int = 16 * 1024 * 1024
    """Request bodies held at once, from the first byte to the answer (503 beyond). A body parsed
    costs ~6 times its size: 16 MiB of bodies can cost ~100 MiB at worst."""
    idle_seconds: float = 60.0
    """An idle keep-alive is closed after this long (the API server's own idle timeout is 90 s)."""
