"""Tests for httptask.redaction: every form a secret can take in output is masked, and the guarded stream
masks a secret even when it is written in pieces."""

from __future__ import annotations

import base64
import collections
import html
import io
import itertools
import json
import pickle
import re
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import markupsafe
import pytest

from httptask import redaction
from httptask.auth import is_credential_name
from httptask.redaction import _ESCAPE_STARTS, RedactingStream, Redactor, _forms

KEY = "sk_test_51H+x/y z=="
CANARY = 'c"a\\n/é€🔑 ry'


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_redacts_plain_and_derived_forms() -> None:
    redactor = Redactor()
    redactor.add(KEY)
    text = (
        f"key={KEY} basic={b64(KEY)} user={b64(KEY + ':')} "
        f"url={quote(KEY, safe='')} form={quote_plus(KEY, safe='')}"
    )
    redacted = redactor.redact(text)
    assert redacted == "key=*** basic=*** user=*** url=*** form=***"
    for form in (KEY, b64(KEY), b64(KEY + ":"), quote(KEY, safe=""), quote_plus(KEY, safe="")):
        assert form not in redacted


def test_longest_value_is_replaced_first() -> None:
    redactor = Redactor()
    redactor.add("abcd")
    redactor.add("abcdefgh")
    assert redactor.redact("x abcdefgh y abcd") == "x *** y ***"


def test_short_values_are_redacted_and_empty_ones_ignored() -> None:
    redactor = Redactor()
    redactor.add("")
    assert redactor.redact("nothing known") == "nothing known"
    redactor.add("pin")
    assert redactor.redact("the pin is pin") == "the *** is ***"


def test_redact_value_copies_deeply() -> None:
    redactor = Redactor()
    redactor.add("s3cret")
    value = {"a": ["x s3cret", ("s3cret", 1)], "s3cret": {"n": None}}
    assert redactor.redact_value(value) == {"a": ["x ***", ("***", 1)], "***": {"n": None}}
    assert value == {"a": ["x s3cret", ("s3cret", 1)], "s3cret": {"n": None}}


def test_redact_headers() -> None:
    redactor = Redactor()
    redactor.add("s3cret")
    headers = {
        "Authorization": "Basic Zm9vOg==",
        "Proxy-Authorization": "x",
        "Cookie": "session=1",
        "X-ApiKey": "k",
        "X-Api-Key": "k",
        "X-Auth-Token": "t",
        "Client-Secret": "c",
        "Stripe-Account-Key": "k",
        "Idempotency-Key": "idem-1",
        "chargebee-request-origin-user": "me@example.com",
        "X-Note": "echo s3cret",
    }
    assert redactor.redact_headers(headers) == {
        "Authorization": "***",
        "Proxy-Authorization": "***",
        "Cookie": "***",
        "X-ApiKey": "***",
        "X-Api-Key": "***",
        "X-Auth-Token": "***",
        "Client-Secret": "***",
        "Stripe-Account-Key": "***",
        "Idempotency-Key": "idem-1",
        "chargebee-request-origin-user": "me@example.com",
        "X-Note": "echo ***",
    }
    assert not is_credential_name("X-Idempotency-Token")


def forms(secret: str) -> dict[str, str]:
    """Every encoding of `secret` our outputs can produce."""
    json_ascii = json.dumps(secret)[1:-1]
    json_text = json.dumps(secret, ensure_ascii=False)[1:-1]
    return {
        "raw": secret,
        "json": json_text,
        "json ascii": json_ascii,
        "json in json": json.dumps(json_text)[1:-1],
        "json ascii in json": json.dumps(json_ascii)[1:-1],
        "percent": quote(secret, safe=""),
        "percent lower": quote(secret, safe="").lower(),
        "percent plus": quote_plus(secret, safe=""),
        "percent partial": quote(secret, safe='/"\\'),
        "base64": b64(secret),
        "base64 unpadded": b64(secret).rstrip("="),
        "base64 url": base64.urlsafe_b64encode(secret.encode()).decode(),
        "basic user": b64(secret + ":"),
        "percent base64": quote(b64(secret), safe=""),
    }


@pytest.mark.parametrize(("name", "form"), list(forms(CANARY).items()))
def test_every_form_of_the_canary_is_masked(name: str, form: str) -> None:
    redactor = Redactor([CANARY])
    assert redactor.redact(f"<{form}>") == "<***>"


def spelled_out(secret: str) -> dict[str, str]:
    """`secret` with every character escaped, letters and digits too, as an encoder that escapes everything
    writes it."""
    utf8, units = secret.encode(), secret.encode("utf-16-be")
    points = [ord(char) for char in secret]
    json_escaped = "".join(f"\\u{int.from_bytes(units[at : at + 2]):04x}" for at in range(0, len(units), 2))
    return {
        "percent upper": "".join(f"%{byte:02X}" for byte in utf8),
        "percent lower": "".join(f"%{byte:02x}" for byte in utf8),
        "\\u lower": json_escaped,
        "\\u upper": json_escaped.upper().replace("\\U", "\\u"),
        "\\u in json": json.dumps(json_escaped)[1:-1],
        "decimal entities": "".join(f"&#{point};" for point in points),
        "decimal entities padded": "".join(f"&#{point:06d};" for point in points),
        "hex entities": "".join(f"&#x{point:x};" for point in points),
        "hex entities upper": "".join(f"&#X{point:X};" for point in points),
    }


@pytest.mark.parametrize("secret", ["sk_live_Abc123xyz", "123", CANARY], ids=["key", "pin", "canary"])
@pytest.mark.parametrize("name", list(spelled_out(CANARY)))
def test_a_secret_with_every_character_escaped_is_masked(secret: str, name: str) -> None:
    """Letters and digits need no escaping, but an encoder may escape them all: in a body that is not JSON, a
    header, a reason phrase."""
    redactor = Redactor([secret])
    form = spelled_out(secret)[name]
    assert redactor.redact(f"body: x={form}&y=1") == "body: x=***&y=1"
    assert redactor.redact_headers({"X-Echo": form, "Location": f"/r?k={form}"}) == {
        "X-Echo": "***",
        "Location": "/r?k=***",
    }


def test_a_derived_value_is_masked_once_registered() -> None:
    redactor = Redactor([CANARY])
    pair = b64(f"user:{CANARY}")
    assert redactor.redact(pair) == pair
    redactor.add(f"Basic {pair}")
    assert redactor.redact(f"Authorization: Basic {pair}") == "Authorization: ***"


def test_text_without_a_secret_is_unchanged() -> None:
    redactor = Redactor([CANARY])
    text = 'c"a\\m/é€ ry u00e9 %zz ' + json.dumps({"k": "v"})
    assert redactor.redact(text) == text


def test_pickles_with_its_values() -> None:
    redactor = pickle.loads(pickle.dumps(Redactor(["s3cret"])))
    assert redactor.redact("a s3cret") == "a ***"
    merged = Redactor(["other"])
    merged.merge(redactor)
    assert merged.redact("s3cret other") == "*** ***"


@pytest.mark.parametrize("step", [1, 2, 3, 7, 50])
def test_the_stream_masks_a_secret_written_in_pieces(step: int) -> None:
    sink = io.StringIO()
    stream = RedactingStream(sink, Redactor([CANARY]))
    text = f"start {CANARY} middle {json.dumps(CANARY)} end\n" * 3
    for start in range(0, len(text), step):
        stream.write(text[start : start + step])
    stream.flush()
    assert sink.getvalue() == 'start *** middle "***" end\n' * 3


def test_the_stream_has_no_binary_buffer() -> None:
    stream = RedactingStream(io.StringIO(), Redactor())
    assert not hasattr(stream, "buffer")


def test_the_stream_sends_each_line_as_it_ends() -> None:
    sink = io.StringIO()
    stream = RedactingStream(sink, Redactor([CANARY]))
    stream.write(f"serving at http://x {CANARY}\nnext ")
    assert sink.getvalue() == "serving at http://x ***\n"


def test_a_secret_spanning_lines_is_masked_across_them() -> None:
    secret = "-----BEGIN KEY-----\nMIIBOgIBAAJBAK\n-----END KEY-----"
    sink = io.StringIO()
    stream = RedactingStream(sink, Redactor([secret]))
    for line in f"key:\n{secret}\ndone\n".splitlines(keepends=True):
        stream.write(line)
    stream.flush()
    assert sink.getvalue() == "key:\n***\ndone\n"


# The canary of the leak sweep's kind, with both quotes so that Python's repr escapes one of them.
QUOTED = "Cn4'ry\"q\\u/é€ +&=%?#x\x01"


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("repr", repr(QUOTED)),
        ("repr of bytes", repr(QUOTED.encode())),
        ("ascii", ascii(QUOTED)),
        ("html", html.escape(QUOTED)),
        ("html by jinja", str(markupsafe.escape(QUOTED))),
        ("upper case", QUOTED.upper()),
        ("lower case", QUOTED.lower()),
        ("json of upper case", json.dumps(QUOTED.upper())),
    ],
)
def test_the_forms_python_html_and_a_changed_case_give_are_masked(name: str, form: str) -> None:
    redactor = Redactor([QUOTED])
    assert QUOTED[:3].lower() not in redactor.redact(form).lower(), name


KEY40 = "sk_live_4eC39HqLyjWDarjtT1zdp7dc9Y2x1RqK"


@pytest.mark.parametrize("change", [str.upper, str.lower], ids=["upper", "lower"])
def test_base64_of_a_secret_in_a_changed_case_is_masked(change: Callable[[str], str]) -> None:
    # A server echoing `Authorization: Basic ...` upper-cased: the secret can be guessed back from it.
    basic = base64.b64encode(f"{KEY40}:".encode()).decode()
    alone = base64.b64encode(KEY40.encode()).decode()
    text = change(f"authorization: basic {basic}; key {alone}")
    shown = Redactor([KEY40]).redact(text)
    assert change(basic)[:8] not in shown and change(alone)[:8] not in shown, shown


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [
        ("a prefix", f"key {KEY40[:14]} unknown", "key sk_liv*** unknown"),
        ("a suffix", f"key ...{KEY40[-10:]}.", "key ...***."),
        ("the middle", f"[{KEY40[7:30]}]", f"[{KEY40[7:12]}***]"),
        ("cut short", json.dumps({"note": "bad " + KEY40})[:40] + "...", '{"note": "bad sk_liv***...'),
        ("upper-cased part", f"<{KEY40[:20].upper()}>", "<SK_LIV***>"),
        # A quote may be the text's own (`\\"` may close a string): a mask neither starts nor ends on one.
        ("json-escaped part", json.dumps(QUOTED[6:20])[1:-1], '\\"***'),
    ],
)
def test_a_part_of_a_secret_is_masked(name: str, text: str, shown: str) -> None:
    redactor = Redactor([KEY40, QUOTED])
    assert redactor.redact(text) == shown, name


def test_a_mask_keeps_the_text_around_a_part_intact() -> None:
    # The echoed prefix stops just before the secret's own quote: the `"` that follows closes the JSON
    # string, and one nested a level deeper starts with the escape's backslash, which goes with it.
    secret = 'Ab3dEf6hIj9lMn2p"qR5tUv'
    redactor = Redactor([secret])
    assert json.loads(redactor.redact(json.dumps({"note": secret[:16]}))) == {"note": "***"}
    nested = json.dumps(json.dumps({"note": "é" + secret[:16]}, ensure_ascii=True))
    assert json.loads(json.loads(Redactor(["é" + secret]).redact(nested))) == {"note": "***"}


def test_a_block_that_reads_as_a_word_masks_no_word() -> None:
    # `nknown` and `econci` are blocks of these keys; the words holding them stay readable. The keys do not.
    redactor = Redactor(["test_unknown_key", "test_reconcile_key", "SK_LIVE_UNKNOWN_KEY_X"])
    text = "outcome unknown, resolved by reconciliation; UNKNOWN"
    assert redactor.redact(text) == text
    assert redactor.redact("test_unknown_key TEST_RECONCILE_KEY") == "*** ***"


def test_a_part_shorter_than_two_blocks_and_a_short_secret_stay_unmasked() -> None:
    # Eleven characters in a row always hold one block of six; eight may not, and need not be masked. A
    # secret under 16 characters is masked whole only: its blocks would be words (`test_` of `test_key`).
    redactor = Redactor([KEY40, "pin42", "test_cli_key"])
    assert redactor.redact(f"{KEY40[1:9]} pin4 sk_ other") == f"{KEY40[1:9]} pin4 sk_ other"
    assert redactor.redact(f"x{KEY40[1:12]}x pin42") == f"x{KEY40[1:6]}***x ***"
    assert redactor.redact("/tmp/test_resume TEST_CLI_KEY") == "/tmp/test_resume ***"


def test_a_derived_value_is_masked_whole_only() -> None:
    # `Zoho-oauthtoken ` is public: the header's prefix stays readable wherever it appears alone.
    redactor = Redactor()
    redactor.add_derived("Zoho-oauthtoken 1000.abc")
    assert redactor.redact("Zoho-oauthtoken 1000.abc; Zoho-oauthtoken") == "***; Zoho-oauthtoken"


def test_pickles_with_its_derived_values() -> None:
    redactor = Redactor(["s3cret-value"], derived=["Bearer s3cret-value"])
    copy = pickle.loads(pickle.dumps(redactor))
    assert copy.redact("Bearer s3cret-value and S3CRET-VALUE") == "*** and ***"
    merged = Redactor()
    merged.merge(copy)
    assert merged.redact("Bearer s3cret-value") == "***"


def _first_characters(pattern: str) -> set[str]:
    """The characters a text matched by the regular expression `pattern` can start with."""
    kind, value = re._parser.parse(pattern)[0]  # type: ignore[attr-defined]
    assert kind == re._constants.LITERAL, (pattern, kind)  # type: ignore[attr-defined]
    return {chr(value)}


SAMPLE_CHARACTERS = [chr(code) for code in [*range(0x300), 0x2028, 0x20AC, 0xFFFD, 0x1F511, 0x10FFFF]]


@pytest.mark.parametrize("char", SAMPLE_CHARACTERS, ids=ascii)
def test_every_form_of_a_character_but_itself_starts_with_an_escape_start(char: str) -> None:
    # `Redactor._clean` looks only for the forms as written in a text with none of `_ESCAPE_STARTS`: a new
    # form of a character that starts otherwise must be added there.
    own, *others = _forms(char)
    assert _first_characters(own) == {char}
    for form in others:
        assert _first_characters(form) <= set(_ESCAPE_STARTS), (char, form)


LOOKED_FOR = [KEY, CANARY, QUOTED, KEY40, "pin42", "test_unknown_key"]
DERIVED = [f"Basic {b64('user:' + CANARY)}", f"Bearer {KEY}", "Token é x"]


def _plain_matches(tokens: Any) -> set[str]:
    """Every text the parsed regular expression `tokens` matches that holds none of `_ESCAPE_STARTS`."""
    constants = re._constants  # type: ignore[attr-defined]
    texts = {""}
    for op, arg in tokens:
        if op is constants.LITERAL:
            options = {chr(arg)}
        elif op is constants.IN:
            assert {kind for kind, _ in arg} <= {constants.LITERAL}, arg
            options = {chr(code) for _, code in arg}
        elif op is constants.BRANCH:
            options = set().union(*(_plain_matches(branch) for branch in arg[1]))
        elif op is constants.SUBPATTERN:
            options = _plain_matches(arg[-1])
        elif op is constants.MAX_REPEAT:
            least, most, repeated = arg
            assert most <= 16, arg
            inner = _plain_matches(repeated)
            options = {"".join(p) for n in range(least, most + 1) for p in itertools.product(inner, repeat=n)}
        else:
            raise AssertionError(f"a construct the test does not read: {op}")
        texts = {
            text + option for text in texts for option in options if not set(option) & set(_ESCAPE_STARTS)
        }
        if not texts:
            break
    return texts


def test_what_the_pattern_finds_in_a_text_without_escape_starts_is_a_form_as_written() -> None:
    # `Redactor._clean` looks for the forms as written in such a text, not for the pattern: whatever forms
    # are added to the pattern, it must find nothing else there.
    redactor = Redactor(LOOKED_FOR, derived=DERIVED)
    assert redactor._pattern is not None
    plain = _plain_matches(re._parser.parse(redactor._pattern.pattern))  # type: ignore[attr-defined]
    assert plain and all(any(form in match for form in redactor._literal) for match in plain)


def _texts() -> Iterator[str]:
    """Texts with and without the secrets of `LOOKED_FOR`, in each of their forms, whole and in part."""
    plain = ['{"id": "inv_1", "status": "paid"}', "http://127.0.0.1:9/api/v2/invoices/inv_0/refund", "", "OK"]
    yield from plain
    for secret in LOOKED_FOR:
        for form in [*forms(secret).values(), repr(secret), html.escape(secret), secret.upper()]:
            for text in (form, f"a {form} b", form[: len(form) // 2], form[1:], f"x{form[3:14]}y"):
                yield text
                yield f"{plain[0]} {text} %"  # and with an escape start elsewhere in the text
    for derived in DERIVED:
        yield from (derived, f"{derived[:-1]}.", f"{derived}%")


def test_a_text_found_clean_in_c_is_redacted_as_the_full_search_redacts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redactor = Redactor(LOOKED_FOR, derived=DERIVED)
    texts = list(_texts())
    fast = [redactor._redacted(text) for text in texts]
    clean = [redactor._clean(text) for text in texts]
    monkeypatch.setattr(Redactor, "_clean", lambda self, text: False)
    slow = [redactor._redacted(text) for text in texts]
    assert fast == slow
    assert all(shown == text for text, shown, surely in zip(texts, slow, clean, strict=True) if surely)
    assert 0 < clean.count(True) < len(texts)  # both paths are taken


def test_a_secret_as_written_in_a_text_without_escapes_is_never_found_clean() -> None:
    derived = "Token abc.def"  # a derived value is looked for as written, not in part
    redactor = Redactor(["s3cret-value"], derived=[derived])
    for text in ("s3cret-value", "x S3CRET-VALUE", derived, f"{derived}!", b64("s3cret-value")):
        assert not redactor._clean(text), text
        assert "***" in redactor.redact(text)
    assert redactor._clean("Token abc") and redactor._clean("a clean text")


def test_a_set_of_headers_is_redacted_as_each_header_is_and_the_same_each_time() -> None:
    redactor = Redactor([KEY40])
    pairs = (("content-type", "application/json"), ("x-echo", f"k={KEY40}"), ("set-cookie", "a=1"))
    pairs += (("x-echo", f"last {KEY40[:20]}"),)
    expected = redactor.redact_headers(dict(pairs))
    assert expected == {"content-type": "application/json", "x-echo": "last sk_liv***", "set-cookie": "***"}
    first = redactor.redact_header_pairs(pairs)
    first["x-echo"] = "changed by its caller"
    assert redactor.redact_header_pairs(pairs) == expected
    assert redactor.redact_header_pairs(tuple(pairs)) == expected


def test_headers_redacted_before_a_secret_was_known_are_redacted_again_once_it_is() -> None:
    redactor = Redactor(["s3cret-value"])
    pairs = (("x-echo", "later-s3cret"), ("x-derived", "Token later-s3cret"))
    assert redactor.redact_header_pairs(pairs) == dict(pairs)
    redactor.add("later-s3cret")
    assert redactor.redact_header_pairs(pairs) == {"x-echo": "***", "x-derived": "Token ***"}
    redactor.add_derived("Token abc")
    assert redactor.redact_header_pairs((("x-derived", "Token abc"),)) == {"x-derived": "***"}


def test_a_secret_in_the_headers_of_only_the_thousandth_answer_is_masked() -> None:
    redactor = Redactor([KEY40])
    usual = (("content-type", "application/json"), ("content-length", "228"))
    for n in range(1, 1200):
        pairs = (*usual, ("x-request", f"echo {KEY40}")) if n == 1000 else usual
        shown = redactor.redact_header_pairs(pairs)
        assert (shown.get("x-request") == "echo ***") if n == 1000 else shown == dict(usual)
    for n in range(200):  # more sets than are remembered, each answer its own
        pairs = (*usual, ("date", f"answer {n}"), ("x-echo", KEY40 if n % 50 == 49 else "none"))
        assert redactor.redact_header_pairs(pairs)["x-echo"] == ("***" if n % 50 == 49 else "none")


def _redacted_by_kind(redactor: Redactor, value: Any) -> Any:
    """`Redactor.redact_value` reading types by `isinstance` only: its exact-type checks must equal it."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, Mapping):
        return {
            _redacted_by_kind(redactor, key): _redacted_by_kind(redactor, item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted_by_kind(redactor, item) for item in value]
    if isinstance(value, tuple):
        return tuple(_redacted_by_kind(redactor, item) for item in value)
    return value


class _Text(str):
    pass


def test_a_value_of_any_type_is_redacted_as_its_kind_says() -> None:
    redactor = Redactor([KEY40])
    value = {
        "id": "inv_1",
        KEY40: [1, 2.5, True, None, KEY40, (KEY40, {"k": KEY40[:12]})],
        "ordered": collections.OrderedDict([("a", KEY40)]),
        "proxy": types.MappingProxyType({"b": f"x {KEY40} y"}),
        "text": _Text(KEY40),
        "bytes": KEY40.encode(),
        "int": 10**30,
    }
    redacted = redactor.redact_value(value)
    assert redacted == _redacted_by_kind(redactor, value)
    assert KEY40[:12] not in repr(redacted).replace(repr(KEY40.encode()), "")


def test_headers_given_as_lists_are_redacted_all_the_same() -> None:
    redactor = Redactor([KEY40])
    pairs: Any = [["x-echo", KEY40], ["authorization", "Basic abc"]]
    assert redactor.redact_header_pairs(pairs) == {"x-echo": "***", "authorization": "***"}
    assert redactor.redact_header_pairs(tuple(pairs)) == {"x-echo": "***", "authorization": "***"}


def test_a_text_redacted_while_a_secret_is_being_added_is_not_remembered_unmasked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread may redact while `add` compiles: whatever it gets then, the memo the redactor keeps
    once the secret is known must not hold the text unmasked (the quick clean check reads the forms too)."""
    redactor = Redactor(["first_secret_value"])
    text = "echo later_secret_value"
    seen: list[str] = []
    fewest = redaction._fewest

    def meanwhile(texts: Any) -> tuple[str, ...]:
        if not seen:
            seen.append(redactor.redact(text))  # as another thread would, in the middle of `_compile`
        return fewest(texts)

    monkeypatch.setattr(redaction, "_fewest", meanwhile)
    redactor.add("later_secret_value")
    assert seen  # the redaction did happen while the secret was being added
    assert redactor.redact(text) == "echo ***"
