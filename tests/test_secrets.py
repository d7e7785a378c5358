"""Tests for httptask.secrets: where secrets come from (and nowhere else), file loading, registration."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from httptask.errors import UsageError
from httptask.redaction import Redactor
from httptask.secrets import SecretStore
from servers import closed_port


def test_prefixed_variable_comes_first() -> None:
    store = SecretStore(environ={"HTTPTASK_SECRET_STRIPE_KEY": "a1b2", "STRIPE_KEY": "c3d4"})
    assert store.get("STRIPE_KEY") == "a1b2"
    assert store.get("stripe-key") == "a1b2"
    assert store.redactor.redact("a1b2") == "***"


@pytest.mark.parametrize("name", ["STRIPE_KEY", "AWS_SECRET_ACCESS_KEY", "PATH", "chargebee"])
def test_no_other_variable_is_ever_read(name: str) -> None:
    store = SecretStore(environ={name: "c3d4", name.upper(): "c3d4"})
    with pytest.raises(UsageError) as caught:
        store.get(name)
    assert "Secrets come only from HTTPTASK_SECRET_<NAME> variables and the secrets file." in str(
        caught.value
    )
    assert store.redactor.redact("c3d4") == "c3d4"


def test_every_httptask_variable_is_redacted_before_it_is_asked_for() -> None:
    store = SecretStore(
        environ={"HTTPTASK_SECRET_A": "alpha-1", "HTTPTASK_SECRET_B": "beta-2", "OTHER": "x1"}
    )
    assert store.redactor.redact("alpha-1 beta-2 x1") == "*** *** x1"


def test_the_whole_file_is_redacted_before_any_of_it_is_asked_for(tmp_path: Path) -> None:
    # A sandbox, or a server's answer, may show a value of the file that this process never asks for.
    file = tmp_path / "secrets.yaml"
    file.write_text("a: first-value\nb: second-value\n")
    store = SecretStore(environ={}, file=file)
    assert store.redactor.redact("first-value second-value") == "*** ***"


def test_a_sandbox_started_with_a_secrets_file_masks_its_values_in_its_log(tmp_path: Path) -> None:
    canary = "Fc4n4ry-7Qx9_file-only"
    file = tmp_path / "secrets.yaml"
    file.write_text(f"stripe: {canary}\n")
    port = closed_port()
    env = {**os.environ, "HTTPTASK_SECRETS_FILE": str(file)}
    command = [sys.executable, "-m", "httptask", "sandbox", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        root = f"http://127.0.0.1:{port}"
        with httpx.Client(trust_env=False, timeout=5) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    client.get(f"{root}/_sandbox/health")
                    break
                time.sleep(0.1)
            client.post(
                f"{root}/stripe/v1/payment_records/prec_1/report_refund",
                data={"outcome": "refunded", "processor_details[custom][refund_reference]": canary},
                headers={"X-Note": canary},
            )
            log = client.get(f"{root}/_sandbox/requests").text
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert "prec_1" in log
    for text in (log, out.decode(), err.decode()):
        assert canary not in text and canary[:12] not in text


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
        "(no secrets file is set). Secrets come only from HTTPTASK_SECRET_<NAME> variables and the secrets "
        "file. Set HTTPTASK_SECRET_CHARGEBEE, or name a secrets file holding 'chargebee' in "
        "HTTPTASK_SECRETS_FILE."
    )


def test_missing_secret_with_file(tmp_path: Path) -> None:
    file = tmp_path / "secrets.yaml"
    file.write_text("other: hunter2hunter2\n")
    with pytest.raises(UsageError) as caught:
        SecretStore(environ={}, file=file).get("STRIPE_KEY")
    assert str(caught.value) == (
        "No secret named 'STRIPE_KEY': looked in the environment variable HTTPTASK_SECRET_STRIPE_KEY "
        f"and the secrets file '{file}'. Secrets come only from HTTPTASK_SECRET_<NAME> variables and the "
        "secrets file. Set HTTPTASK_SECRET_STRIPE_KEY, or add 'STRIPE_KEY' to that file."
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
