"""A session (`Ref`) and one of its messages (`Message`) with its compact JSON forms."""

from __future__ import annotations

from dataclasses import dataclass

import blake3
import orjson

from deja.errors import InvalidRequest
from deja.ids import SESSION_ID_RULE, TENANT_RULE, is_valid_session_id, is_valid_tenant
from deja.v1 import sessions_pb2

ROLES = frozenset({"user", "assistant", "system", "tool"})


@dataclass(frozen=True)
class Message:
    seq: int
    role: str
    content: str
    created_at_ms: int
    truncated: bool = False

    def payload(self) -> bytes:
        """The message without its seq (the hot list stores the seq in front of it)."""
        fields = {"r": self.role, "c": self.content, "t": self.created_at_ms}
        if self.truncated:
            fields["x"] = 1
        return orjson.dumps(fields)

    @classmethod
    def from_payload(cls, seq: int, payload: bytes) -> Message:
        fields = orjson.loads(payload)
        return cls(seq, fields["r"], fields["c"], fields["t"], bool(fields.get("x")))

    def line(self) -> bytes:
        """One JSON line of the archive body."""
        fields = {"s": self.seq, "r": self.role, "c": self.content, "t": self.created_at_ms}
        if self.truncated:
            fields["x"] = 1
        return orjson.dumps(fields) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Message:
        fields = orjson.loads(line)
        return cls(fields["s"], fields["r"], fields["c"], fields["t"], bool(fields.get("x")))

    def to_proto(self) -> sessions_pb2.SessionMessage:
        return sessions_pb2.SessionMessage(
            seq=self.seq,
            role=self.role,
            content=self.content,
            created_at_ms=self.created_at_ms,
            truncated=self.truncated,
        )


@dataclass(frozen=True)
class Ref:
    """Which session: the tenant that owns it and the id the client gave it."""

    tenant: str
    session_id: str

    @property
    def key(self) -> str:
        """Fixed-size name for Redis keys and the archive file (ids are client-chosen text)."""
        return blake3.blake3(self.session_id.encode()).hexdigest(16)

    @classmethod
    def from_proto(cls, ref: sessions_pb2.SessionRef) -> Ref:
        if not is_valid_tenant(ref.tenant):
            raise InvalidRequest(f"ref.{TENANT_RULE}")
        if not is_valid_session_id(ref.session_id):
            raise InvalidRequest(f"ref.{SESSION_ID_RULE}")
        return cls(ref.tenant, ref.session_id)
