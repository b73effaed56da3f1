"""Hypothesis strategies for every wire record, derived from the records' SCHEMA tables so
that no record or field can be missed; plus the tests that prove the coverage.

Other ``test_proto_*`` modules import the strategies from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from zetcd.proto import (
    MULTI_OP_REQUESTS,
    MULTI_READ_OPS,
    MULTI_RESULT_RESPONSES,
    OPS,
    ErrorResponse,
    MultiOp,
    MultiRequest,
    MultiResponse,
    MultiResult,
    ReplyHeader,
    RequestHeader,
)
from zetcd.proto.jute import (
    BOOL_T,
    BUFFER_T,
    INT_T,
    LONG_T,
    OPTIONAL_BOOL_T,
    USTRING_T,
    JuteType,
    Vector,
)
from zetcd.proto.records import JUTE_RECORDS

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
BUFFERS = st.none() | st.binary(max_size=24)
# Basic Multilingual Plane only: a character outside it decodes as a surrogate pair and is written
# back in CESU-8, as jute does (tests/test_proto_roundtrip.py checks that apart)
USTRINGS = st.none() | st.text(
    st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=12
)

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    INT_T: INT32,
    LONG_T: INT64,
    BOOL_T: st.booleans(),
    BUFFER_T: BUFFERS,
    USTRING_T: USTRINGS,
    OPTIONAL_BOOL_T: st.none() | st.booleans(),
}


def for_type(jt: JuteType) -> st.SearchStrategy[Any]:
    """A strategy for values of one jute type of a schema."""
    if isinstance(jt, Vector):
        return st.none() | st.lists(for_type(jt.elem), max_size=3).map(tuple)
    if isinstance(jt, str):
        return _PRIMITIVES[jt]
    return records(jt)


def _multi_op(op_type: int) -> st.SearchStrategy[MultiOp]:
    return records(MULTI_OP_REQUESTS[op_type]).map(lambda req: MultiOp(op_type, req))


def _multi_ops(read: bool) -> st.SearchStrategy[list[MultiOp]]:
    kinds = sorted(t for t in MULTI_OP_REQUESTS if (t in MULTI_READ_OPS) == read)
    return st.lists(st.sampled_from(kinds).flatmap(_multi_op), max_size=4)


def _multi_result(result_type: int) -> st.SearchStrategy[MultiResult]:
    cls = MULTI_RESULT_RESPONSES[result_type]
    body = st.none() if cls is None else records(cls)
    return st.builds(MultiResult, st.just(result_type), INT32, body)


MULTI_REQUESTS: st.SearchStrategy[MultiRequest] = (
    st.booleans().flatmap(_multi_ops).map(lambda ops: MultiRequest(tuple(ops)))
)
MULTI_RESPONSES: st.SearchStrategy[MultiResponse] = st.lists(
    st.sampled_from(sorted(MULTI_RESULT_RESPONSES)).flatmap(_multi_result), max_size=4
).map(lambda results: MultiResponse(tuple(results)))

_CACHE: dict[type, st.SearchStrategy[Any]] = {
    MultiRequest: MULTI_REQUESTS,
    MultiResponse: MULTI_RESPONSES,
}


def records(cls: Any) -> st.SearchStrategy[Any]:
    """A strategy for instances of ``cls`` built field by field from its SCHEMA."""
    if cls not in _CACHE:
        fields = [for_type(jt) for _, jt in cls.SCHEMA]
        _CACHE[cls] = st.builds(cls, *fields)
    return _CACHE[cls]


ALL_RECORD_TYPES: tuple[type, ...] = (*JUTE_RECORDS, MultiRequest, MultiResponse)

REQUEST_HEADERS = st.builds(RequestHeader, INT32, INT32)
REPLY_HEADERS = st.builds(ReplyHeader, INT32, INT64, INT32)


def request_for(opcode: int) -> st.SearchStrategy[Any]:
    cls = OPS[opcode].request
    return st.none() if cls is None else records(cls)


def response_for(opcode: int) -> st.SearchStrategy[Any]:
    cls = OPS[opcode].response
    return st.none() if cls is None else records(cls)


# --- coverage -------------------------------------------------------------------------


def test_every_schema_matches_its_dataclass_fields() -> None:
    for cls in JUTE_RECORDS:
        assert dataclasses.is_dataclass(cls)
        params = cls.__dataclass_params__
        assert params.frozen, cls
        assert "__slots__" in cls.__dict__, cls
        assert [name for name, _ in cls.SCHEMA] == [f.name for f in dataclasses.fields(cls)]
        doc = cls.__doc__ or ""
        assert "jute" in doc or ".java" in doc, f"{cls.__name__} docstring names no source"


def test_every_record_in_the_opcode_table_has_a_strategy() -> None:
    used = {c for spec in OPS.values() for c in (spec.request, spec.response) if c is not None}
    used |= set(MULTI_OP_REQUESTS.values())
    used |= {c for c in MULTI_RESULT_RESPONSES.values() if c is not None}
    assert used <= set(ALL_RECORD_TYPES)
    for cls in used:
        assert records(cls) is not None


def test_opcode_table_covers_the_client_opcodes() -> None:
    expected = {*range(1, 10), *range(11, 23), *range(100, 108), -11, -10}
    assert set(OPS) == expected
    for code, spec in OPS.items():
        assert spec.code == code


def test_error_results_use_error_response() -> None:
    assert MULTI_RESULT_RESPONSES[-1] is ErrorResponse
    assert MultiResult.error(-103) == MultiResult(-1, -103, ErrorResponse(-103))
