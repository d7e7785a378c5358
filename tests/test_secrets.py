"""Tests for httptask.secrets: resolution order, file loading, and redaction of every wire form."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from httptask.errors import UsageError
from httptask.auth import is_credential_name
from httptask.secrets import Redactor, SecretStore

KEY = "sk_test_51H+x/y z=="


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


def test_prefixed_variable_comes_first() -> None:
    store = SecretStore(environ={"HTTPTASK_SECRET_STRIPE_KEY": "a1b2", "STRIPE_KEY": "c3d4"})
    assert store.get("STRIPE_KEY") == "a1b2"
    assert store.get("stripe-key") == "a1b2"
    assert store.redactor.redact("a1b2") == "***"


def test_exact_variable_only_for_upper_case_names() -> None:
    store = SecretStore(environ={"STRIPE_KEY": "c3d4", "chargebee": "nope"})
    assert store.get("STRIPE_KEY") == "c3d4"
    with pytest.raises(UsageError):
        store.get("chargebee")


def test_dots_and_dashes_become_underscores() -> None:
    store = SecretStore(environ={"HTTPTASK_SECRET_ZOHO_ORG_TOKEN": "zz11"})
    assert store.get("zoho.org-token") == "zz11"


def test_file_is_read_after_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("chargebee: cb_live_123\ngeins: 'g-456'\n")
    store = SecretStore(environ={"HTTPTASK_SECRET_GEINS": "from-env"}, file=file)
    assert store.get("chargebee") == "cb_live_123"
    assert store.get("geins") == "from-env"
    assert store.redactor.redact("cb_live_123 from-env") == "*** ***"


def test_file_from_environment_variable_and_json(tmp_path: Path) -> None:
    file = tmp_path / "secrets.json"
    file.write_text('{"stripe": "sk_test_1"}')
    store = SecretStore(environ={"HTTPTASK_SECRETS_FILE": str(file)})
    assert store.get("stripe") == "sk_test_1"


def test_missing_secret_without_file() -> None:
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}).get("chargebee")
    assert str(caught.value) == (
        "No secret named 'chargebee': looked in the environment variable HTTPTASK_SECRET_CHARGEBEE "
        "(no secrets file is set). Set HTTPTASK_SECRET_CHARGEBEE, or name a secrets file holding "
        "'chargebee' in HTTPTASK_SECRETS_FILE."
    )


def test_missing_secret_with_file(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("other: hunter2hunter2\n")
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("STRIPE_KEY")
    assert str(caught.value) == (
        "No secret named 'STRIPE_KEY': looked in the environment variables HTTPTASK_SECRET_STRIPE_KEY "
        f"and STRIPE_KEY and the secrets file '{file}'. Set HTTPTASK_SECRET_STRIPE_KEY, or add "
        "'STRIPE_KEY' to that file."
    )
    assert "hunter2" not in str(caught.value)


def test_non_string_value_names_the_secret_not_the_value(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("pin: 424242\n")
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("pin")
    assert str(caught.value) == (
        f"The secret 'pin' in the secrets file '{file}' is not a string; quote its value in the file."
    )


def test_broken_file_does_not_echo_its_content(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("ok: fine\nstripe: [sk_live_leaky\n")
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("stripe")
    assert str(caught.value) == (
        f"The secrets file '{file}' is not valid YAML or JSON at line 3; fix it so it maps names to values."
    )


def test_file_must_be_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("a")
    assert str(caught.value) == (
        f"The secrets file '{file}' holds a list, not a mapping of names to values; "
        "write it as 'name: value' lines or a JSON object."
    )


def test_missing_file(tmp_path: Path) -> None:
    file = tmp_path / "nope.yaml"
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("a")
    assert str(caught.value) == (
        f"The secrets file '{file}' cannot be read (No such file or directory); "
        "check the path given in HTTPTASK_SECRETS_FILE."
    )


def test_world_readable_file_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("a: value\n")
    file.chmod(0o644)
    assert SecretStore(environ={}, file=file).get("a") == "value"


def test_shared_redactor() -> None:
    redactor = Redactor()
    store = SecretStore(environ={"HTTPTASK_SECRET_A": "value-a"}, redactor=redactor)
    store.get("a")
    assert store.redactor is redactor
    assert redactor.redact("value-a") == "***"
