from deja.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyCandidate(_message.Message):
    __slots__ = ("entry_id", "prompt", "similarity")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    prompt: str
    similarity: float
    def __init__(self, entry_id: _Optional[str] = ..., prompt: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("query", "candidates")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    query: str
    candidates: _containers.RepeatedCompositeFieldContainer[VerifyCandidate]
    def __init__(self, query: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[VerifyCandidate, _Mapping]]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("entry_id", "probability")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    probability: float
    def __init__(self, entry_id: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("verdicts", "model")
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    model: _common_pb2.ModelInfo
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...
