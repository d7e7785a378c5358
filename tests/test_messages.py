"""messages: a response body as templates, reports and the journal read it."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest

from httptask.execute import response_record
from httptask.limits import MAX_DEPTH
from httptask.messages import HttpResponse
from httptask.redaction import Redactor


def json_answer(content: bytes, content_type: str = "application/json") -> HttpResponse:
    return HttpResponse(200, (("Content-Type", content_type),), content, 1.0)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_json_is_parsed_and_other_bodies_are_text() -> None:
    assert json_answer(b'{"id": "re_1"}').body() == {"id": "re_1"}
    assert json_answer(b'{"title": "x"}', "application/problem+json; charset=utf-8").body() == {"title": "x"}
    assert json_answer(b"<p>hi</p>", "text/html").body() == "<p>hi</p>"
    assert json_answer(b'{"id": ').body() == '{"id": '
    assert json_answer(b"  ").body() is None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 990, 200_000])
def test_json_nested_past_the_limit_is_kept_as_text_and_can_be_reported(depth: int) -> None:
    # A server's answer is not the user's input: an answer nested this deep must not stop a run after the
    # request was sent (the redactor, the journal and the editor all walk a body recursively).
    answer = json_answer(nested(depth))
    assert answer.body() == nested(depth).decode()
    record = response_record(answer, Redactor())
    assert record["body"] == nested(depth).decode()
    json.dumps(record)


def test_json_nested_to_the_limit_is_parsed() -> None:
    body = json_answer(nested(MAX_DEPTH - 1)).body()
    assert isinstance(body, dict)


def _read_as_text(content: bytes) -> object:
    """What a JSON body is read as: the text (bytes that are not UTF-8 replaced), parsed when it is JSON."""
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


@pytest.mark.parametrize(
    "content",
    [
        b'{"id": "re_1"}',
        b'\xef\xbb\xbf{"id": "re_1"}',  # a byte order mark: json reads the bytes, but not the text
        '{"id": "re_1"}'.encode("utf-16"),
        '{"id": "re_1"}'.encode("utf-16-le"),
        '{"id": "re_1"}'.encode("utf-32"),
        b'{"id": "re_\xed\xa0\x80"}',  # an encoded surrogate: json's bytes reading lets it pass
        b'{"id": "re_\xff"}',  # not UTF-8
        '{"id": "re_\ufffd"}'.encode(),
        b"  ",
        b"",
        b"1",
    ],
)
def test_a_json_body_is_the_text_parsed_whether_or_not_the_bytes_were_parsed_for_the_check(
    content: bytes,
) -> None:
    # The response check parses the bytes once (`json()`); `body()` reuses that only where it is the text.
    answer = json_answer(content)
    with contextlib.suppress(ValueError):
        answer.json()
    assert answer.body() == _read_as_text(content)
    assert json_answer(content).body() == _read_as_text(content)


def test_a_response_reads_its_text_content_type_and_parse_once_and_keeps_them() -> None:
    answer = json_answer(b'{"id": "re_1"}', "Application/JSON; charset=utf-8")
    assert "UTF-8" in (HttpResponse.text.__doc__ or "")  # read on the class: the descriptor, documented
    assert (answer.text, answer.content_type) == ('{"id": "re_1"}', "application/json")
    assert answer.text is answer.text and answer.json() is answer.json()
    assert {"text", "content_type", "_parsed"} <= set(vars(answer))
    # A copy with other content computes its own.
    copy = dataclasses.replace(answer, content=b"[]")
    assert (copy.text, copy.json(), copy.body()) == ("[]", [], [])
