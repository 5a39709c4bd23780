from deja.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SemanticUpsertRequest(_message.Message):
    __slots__ = ("scope", "context_hash", "vector", "prompt", "entry_id", "expires_at_ms", "model_version")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    context_hash: bytes
    vector: _containers.RepeatedScalarFieldContainer[float]
    prompt: str
    entry_id: str
    expires_at_ms: int
    model_version: str
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., context_hash: _Optional[bytes] = ..., vector: _Optional[_Iterable[float]] = ..., prompt: _Optional[str] = ..., entry_id: _Optional[str] = ..., expires_at_ms: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class SemanticUpsertResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SemanticSearchRequest(_message.Message):
    __slots__ = ("scope", "context_hash", "vector", "k", "min_similarity", "model_version")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    context_hash: bytes
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    min_similarity: float
    model_version: str
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., context_hash: _Optional[bytes] = ..., vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., min_similarity: _Optional[float] = ..., model_version: _Optional[str] = ...) -> None: ...

class SemanticHit(_message.Message):
    __slots__ = ("entry_id", "prompt", "similarity")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    prompt: str
    similarity: float
    def __init__(self, entry_id: _Optional[str] = ..., prompt: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class SemanticSearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SemanticHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[SemanticHit, _Mapping]]] = ...) -> None: ...

class SemanticDeleteRequest(_message.Message):
    __slots__ = ("scope", "entry_ids")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SemanticDeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class DropTenantRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class DropTenantResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class SemanticStatsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class SemanticStatsResponse(_message.Message):
    __slots__ = ("points", "backend")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    points: int
    backend: str
    def __init__(self, points: _Optional[int] = ..., backend: _Optional[str] = ...) -> None: ...

class SemanticInvalidateRequest(_message.Message):
    __slots__ = ("tenant", "namespace", "entry_ids")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    namespace: str
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., namespace: _Optional[str] = ..., entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SemanticInvalidateResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...
