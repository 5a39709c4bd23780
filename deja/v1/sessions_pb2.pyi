from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionRef(_message.Message):
    __slots__ = ("tenant", "session_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    session_id: str
    def __init__(self, tenant: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ("seq", "role", "content", "created_at_ms", "truncated")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    role: str
    content: str
    created_at_ms: int
    truncated: bool
    def __init__(self, seq: _Optional[int] = ..., role: _Optional[str] = ..., content: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "created_at_ms", "updated_at_ms", "turns", "hot", "archived")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    HOT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    created_at_ms: int
    updated_at_ms: int
    turns: int
    hot: int
    archived: int
    def __init__(self, session_id: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., turns: _Optional[int] = ..., hot: _Optional[int] = ..., archived: _Optional[int] = ...) -> None: ...

class SessionAppendRequest(_message.Message):
    __slots__ = ("ref", "messages")
    REF_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ref: SessionRef
    messages: _containers.RepeatedCompositeFieldContainer[SessionMessage]
    def __init__(self, ref: _Optional[_Union[SessionRef, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[SessionMessage, _Mapping]]] = ...) -> None: ...

class SessionAppendResponse(_message.Message):
    __slots__ = ("first_seq", "last_seq")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    last_seq: int
    def __init__(self, first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...

class SessionGetRequest(_message.Message):
    __slots__ = ("ref", "after_seq")
    REF_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    ref: SessionRef
    after_seq: int
    def __init__(self, ref: _Optional[_Union[SessionRef, _Mapping]] = ..., after_seq: _Optional[int] = ...) -> None: ...

class SessionGetResponse(_message.Message):
    __slots__ = ("found", "info", "messages", "more")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    info: SessionInfo
    messages: _containers.RepeatedCompositeFieldContainer[SessionMessage]
    more: bool
    def __init__(self, found: _Optional[bool] = ..., info: _Optional[_Union[SessionInfo, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[SessionMessage, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class SessionRecentRequest(_message.Message):
    __slots__ = ("ref", "n")
    REF_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    ref: SessionRef
    n: int
    def __init__(self, ref: _Optional[_Union[SessionRef, _Mapping]] = ..., n: _Optional[int] = ...) -> None: ...

class SessionRecentResponse(_message.Message):
    __slots__ = ("found", "messages")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    found: bool
    messages: _containers.RepeatedCompositeFieldContainer[SessionMessage]
    def __init__(self, found: _Optional[bool] = ..., messages: _Optional[_Iterable[_Union[SessionMessage, _Mapping]]] = ...) -> None: ...

class SessionContextRequest(_message.Message):
    __slots__ = ("ref", "query", "recent", "k")
    REF_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    ref: SessionRef
    query: str
    recent: int
    k: int
    def __init__(self, ref: _Optional[_Union[SessionRef, _Mapping]] = ..., query: _Optional[str] = ..., recent: _Optional[int] = ..., k: _Optional[int] = ...) -> None: ...

class ScoredMessage(_message.Message):
    __slots__ = ("message", "score")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    message: SessionMessage
    score: float
    def __init__(self, message: _Optional[_Union[SessionMessage, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SessionContextResponse(_message.Message):
    __slots__ = ("found", "recent", "relevant", "relevant_available")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    RELEVANT_FIELD_NUMBER: _ClassVar[int]
    RELEVANT_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    recent: _containers.RepeatedCompositeFieldContainer[SessionMessage]
    relevant: _containers.RepeatedCompositeFieldContainer[ScoredMessage]
    relevant_available: bool
    def __init__(self, found: _Optional[bool] = ..., recent: _Optional[_Iterable[_Union[SessionMessage, _Mapping]]] = ..., relevant: _Optional[_Iterable[_Union[ScoredMessage, _Mapping]]] = ..., relevant_available: _Optional[bool] = ...) -> None: ...

class SessionDeleteRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: SessionRef
    def __init__(self, ref: _Optional[_Union[SessionRef, _Mapping]] = ...) -> None: ...

class SessionDeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...
