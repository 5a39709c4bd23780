from deja.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    TIER_EXACT: _ClassVar[Tier]
    TIER_SEMANTIC: _ClassVar[Tier]

class ObservationSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBSERVATION_SOURCE_UNSPECIFIED: _ClassVar[ObservationSource]
    OBSERVATION_SOURCE_JUDGE: _ClassVar[ObservationSource]
    OBSERVATION_SOURCE_AUDIT: _ClassVar[ObservationSource]
    OBSERVATION_SOURCE_FEEDBACK: _ClassVar[ObservationSource]
TIER_UNSPECIFIED: Tier
TIER_EXACT: Tier
TIER_SEMANTIC: Tier
OBSERVATION_SOURCE_UNSPECIFIED: ObservationSource
OBSERVATION_SOURCE_JUDGE: ObservationSource
OBSERVATION_SOURCE_AUDIT: ObservationSource
OBSERVATION_SOURCE_FEEDBACK: ObservationSource

class CacheEntry(_message.Message):
    __slots__ = ("entry_id", "api_format", "model", "response", "usage", "created_at_ms", "expires_at_ms", "prompt")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    API_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    api_format: str
    model: str
    response: bytes
    usage: _common_pb2.Usage
    created_at_ms: int
    expires_at_ms: int
    prompt: str
    def __init__(self, entry_id: _Optional[str] = ..., api_format: _Optional[str] = ..., model: _Optional[str] = ..., response: _Optional[bytes] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., created_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., prompt: _Optional[str] = ...) -> None: ...

class StoreGetRequest(_message.Message):
    __slots__ = ("scope", "key", "count_hit_as")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_HIT_AS_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    key: bytes
    count_hit_as: Tier
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., key: _Optional[bytes] = ..., count_hit_as: _Optional[_Union[Tier, str]] = ...) -> None: ...

class StoreGetResponse(_message.Message):
    __slots__ = ("found", "entry")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    found: bool
    entry: CacheEntry
    def __init__(self, found: _Optional[bool] = ..., entry: _Optional[_Union[CacheEntry, _Mapping]] = ...) -> None: ...

class StorePutRequest(_message.Message):
    __slots__ = ("scope", "key", "entry", "ttl_seconds")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    key: bytes
    entry: CacheEntry
    ttl_seconds: int
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., key: _Optional[bytes] = ..., entry: _Optional[_Union[CacheEntry, _Mapping]] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class StorePutResponse(_message.Message):
    __slots__ = ("stored", "reason", "expires_at_ms", "size_bytes")
    STORED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    reason: str
    expires_at_ms: int
    size_bytes: int
    def __init__(self, stored: _Optional[bool] = ..., reason: _Optional[str] = ..., expires_at_ms: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class StoreDeleteRequest(_message.Message):
    __slots__ = ("scope", "key")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    scope: _common_pb2.Scope
    key: bytes
    def __init__(self, scope: _Optional[_Union[_common_pb2.Scope, _Mapping]] = ..., key: _Optional[bytes] = ...) -> None: ...

class StoreDeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class StoreStatsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class TenantStats(_message.Message):
    __slots__ = ("tenant", "hits", "misses", "entries", "bytes", "hits_exact", "hits_semantic", "tokens_saved", "feedback_correct", "feedback_incorrect", "judge_calls", "judge_yes", "judge_no", "judge_failed", "judge_input_tokens", "judge_output_tokens", "hits_judged", "audits", "audit_errors")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    HITS_EXACT_FIELD_NUMBER: _ClassVar[int]
    HITS_SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_CORRECT_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_INCORRECT_FIELD_NUMBER: _ClassVar[int]
    JUDGE_CALLS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_YES_FIELD_NUMBER: _ClassVar[int]
    JUDGE_NO_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FAILED_FIELD_NUMBER: _ClassVar[int]
    JUDGE_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    HITS_JUDGED_FIELD_NUMBER: _ClassVar[int]
    AUDITS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    hits: int
    misses: int
    entries: int
    bytes: int
    hits_exact: int
    hits_semantic: int
    tokens_saved: int
    feedback_correct: int
    feedback_incorrect: int
    judge_calls: int
    judge_yes: int
    judge_no: int
    judge_failed: int
    judge_input_tokens: int
    judge_output_tokens: int
    hits_judged: int
    audits: int
    audit_errors: int
    def __init__(self, tenant: _Optional[str] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., entries: _Optional[int] = ..., bytes: _Optional[int] = ..., hits_exact: _Optional[int] = ..., hits_semantic: _Optional[int] = ..., tokens_saved: _Optional[int] = ..., feedback_correct: _Optional[int] = ..., feedback_incorrect: _Optional[int] = ..., judge_calls: _Optional[int] = ..., judge_yes: _Optional[int] = ..., judge_no: _Optional[int] = ..., judge_failed: _Optional[int] = ..., judge_input_tokens: _Optional[int] = ..., judge_output_tokens: _Optional[int] = ..., hits_judged: _Optional[int] = ..., audits: _Optional[int] = ..., audit_errors: _Optional[int] = ...) -> None: ...

class StoreStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: TenantStats
    def __init__(self, stats: _Optional[_Union[TenantStats, _Mapping]] = ...) -> None: ...

class StoreCountMissesRequest(_message.Message):
    __slots__ = ("tenant", "misses")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    misses: int
    def __init__(self, tenant: _Optional[str] = ..., misses: _Optional[int] = ...) -> None: ...

class StoreCountMissesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EntryFilter(_message.Message):
    __slots__ = ("tenant", "all_tenants", "namespace", "model", "prompt_contains", "entry_ids")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ALL_TENANTS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    all_tenants: bool
    namespace: str
    model: str
    prompt_contains: str
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., all_tenants: _Optional[bool] = ..., namespace: _Optional[str] = ..., model: _Optional[str] = ..., prompt_contains: _Optional[str] = ..., entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class EntryInfo(_message.Message):
    __slots__ = ("tenant", "namespace", "entry_id", "api_format", "model", "prompt", "created_at_ms", "expires_at_ms", "size_bytes")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    API_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    namespace: str
    entry_id: str
    api_format: str
    model: str
    prompt: str
    created_at_ms: int
    expires_at_ms: int
    size_bytes: int
    def __init__(self, tenant: _Optional[str] = ..., namespace: _Optional[str] = ..., entry_id: _Optional[str] = ..., api_format: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class StoreListRequest(_message.Message):
    __slots__ = ("filter", "limit")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    filter: EntryFilter
    limit: int
    def __init__(self, filter: _Optional[_Union[EntryFilter, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class StoreListResponse(_message.Message):
    __slots__ = ("entries", "matched")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[EntryInfo]
    matched: int
    def __init__(self, entries: _Optional[_Iterable[_Union[EntryInfo, _Mapping]]] = ..., matched: _Optional[int] = ...) -> None: ...

class StoreInvalidateRequest(_message.Message):
    __slots__ = ("filter", "dry_run")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    filter: EntryFilter
    dry_run: bool
    def __init__(self, filter: _Optional[_Union[EntryFilter, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class StoreInvalidateResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[EntryInfo]
    def __init__(self, entries: _Optional[_Iterable[_Union[EntryInfo, _Mapping]]] = ...) -> None: ...

class StoreFeedbackRequest(_message.Message):
    __slots__ = ("tenant", "entry_id", "correct")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    entry_id: str
    correct: bool
    def __init__(self, tenant: _Optional[str] = ..., entry_id: _Optional[str] = ..., correct: _Optional[bool] = ...) -> None: ...

class StoreFeedbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Observation(_message.Message):
    __slots__ = ("score", "similarity", "same", "source", "pair", "at_ms")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAIR_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    score: float
    similarity: float
    same: bool
    source: ObservationSource
    pair: str
    at_ms: int
    def __init__(self, score: _Optional[float] = ..., similarity: _Optional[float] = ..., same: _Optional[bool] = ..., source: _Optional[_Union[ObservationSource, str]] = ..., pair: _Optional[str] = ..., at_ms: _Optional[int] = ...) -> None: ...

class StoreObservationRequest(_message.Message):
    __slots__ = ("tenant", "observation", "counters")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    observation: Observation
    counters: _containers.ScalarMap[str, int]
    def __init__(self, tenant: _Optional[str] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ..., counters: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StoreObservationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreListObservationsRequest(_message.Message):
    __slots__ = ("tenant", "limit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    limit: int
    def __init__(self, tenant: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class StoreListObservationsResponse(_message.Message):
    __slots__ = ("observations",)
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    def __init__(self, observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ...) -> None: ...
