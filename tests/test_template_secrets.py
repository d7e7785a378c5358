"""A secret in a template can only be placed whole into a request value: every transform is refused, at
parse time where the template shows it and at render time otherwise, and never where the value is shown or
stored."""

from __future__ import annotations

import pytest

from httptask.errors import TemplateError
from httptask.secrets import SecretStore
from httptask.templating import base_context, check_template, render_value

CANARY = 'c"a\\n/é€ry'
TRANSFORMED = (
    "a secret can only be inserted, not transformed: place secret('NAME') whole in a header, query, "
    "path or body value, as in \"Bearer {{ secret('NAME') }}\""
)


def render(source: str, *, allowed: bool = True) -> object:
    store = SecretStore(environ={"HTTPTASK_SECRET_X": CANARY})
    context = base_context(inputs={"name": "X", "n": 2}, secrets=store, extra={"item": {"id": 1}})
    return render_value(
        source, context, task_id="t1", field_path="request.body.memo", secrets_allowed=allowed
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ secret('X') }}", CANARY),
        ("  {{ secret('X') }}\n", CANARY),
        ("Bearer {{ secret('X') }}", f"Bearer {CANARY}"),
        ("{{ secret('X') }}:{{ secret('X') }}", f"{CANARY}:{CANARY}"),
        ('{{ secret("X") }} for {{ input.name }}', f"{CANARY} for X"),
        ("{% if input.n > 1 %}key {{ secret('X') }}{% endif %}", f"key {CANARY}"),
        ("{% for i in range(2) %}{{ secret('X') }}{% endfor %}", CANARY * 2),
        # HTML escaping would make `&#34;` of `"`: a form of the secret the redactor need not know.
        ("{% autoescape true %}<{{ secret('X') }}>{% endautoescape %}", f"<{CANARY}>"),
    ],
)
def test_a_secret_placed_whole_is_its_own_text(source: str, expected: str) -> None:
    assert render(source) == expected


TRANSFORMS = [
    "{{ secret('X') | upper }}",
    "{{ secret('X') | lower }}",
    "{{ secret('X')[::-1] }}",
    "{{ secret('X')[0] }}",
    "{{ secret('X') | list | join('-') }}",
    "{{ secret('X').encode().hex() }}",
    "{{ secret('X').split('a') }}",
    "{{ secret('X') | replace('a', 'b') }}",
    "{{ secret('X') | b64encode }}",
    "{{ secret('X') | tojson }}",
    "{{ secret('X') | string }}",
    "{{ secret('X') | urlencode }}",
    "{{ secret('X') | length }}",
    "{{ secret('X') | default('x') }}",
    "{{ secret('X') ~ '' }}",
    "{{ secret('X') + 'x' }}",
    "{{ 'x' + secret('X') }}",
    "{{ secret('X') * 2 }}",
    "{{ '%s' % secret('X') }}",
    "{{ '{}'.format(secret('X')) }}",
    "{{ secret('X') == 'abc' }}",
    "{{ secret('X') != 'abc' }}",
    "{{ secret('X') < 'abc' }}",
    "{{ 'a' in secret('X') }}",
    "{{ secret('X') in 'abc' }}",
    "{{ secret('X') is string }}",
    "{{ secret('X') if input.n else '' }}",
    "{{ [secret('X')] }}",
    "{{ {'k': secret('X')} }}",
    "{{ now(secret('X')) }}",
    "{% for c in secret('X') %}{{ c }}{% endfor %}",
    "{% set s = secret('X') %}{{ s }}",
    "{% set f = secret %}{{ f('X') }}",
    "{% set x %}{{ secret('X') }}{% endset %}{{ x | upper }}",
    "{% filter upper %}{{ secret('X') }}{% endfilter %}",
    "{% macro m() %}{{ secret('X') }}{% endmacro %}{{ m() | upper }}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ secret('X') }}{% endcall %}",
    "{% with s = secret('X') %}{{ s }}{% endwith %}",
    "{{ secret }}",
]


@pytest.mark.parametrize("source", TRANSFORMS)
def test_every_transform_is_refused_before_rendering(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(source, task_id="t1", field_path="request.body.memo", secrets_allowed=True)
    assert caught.value.problem == TRANSFORMED
    assert str(caught.value) == f"task t1, request.body.memo: {TRANSFORMED}"
    with pytest.raises(TemplateError) as rendered:
        render(source)
    assert rendered.value.problem == TRANSFORMED
    assert CANARY not in str(rendered.value)


@pytest.mark.parametrize(
    "source",
    ["{{ secret(input.name) }}", "{{ secret('X' ~ '') }}", "{{ secret() }}", "{{ secret(name='X') }}"],
)
def test_a_secret_is_named_in_quotes(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(source)
    assert caught.value.problem.startswith("secret() takes ")
    assert "secret('STRIPE_KEY')" in caught.value.problem


@pytest.mark.parametrize("field", ["idempotencyKey", "forEach", "outputs.total", "server.site"])
def test_a_secret_is_refused_where_the_value_is_shown_or_stored(field: str) -> None:
    expected = (
        "secret('X') cannot be used here: a secret may only be placed in a request's headers, query, path "
        "or body, never in a value that is shown or stored (an idempotency key, an output, forEach or the "
        "server)"
    )
    with pytest.raises(TemplateError) as checked:
        check_template("{{ secret('X') }}", task_id="t1", field_path=field)
    assert str(checked.value) == f"task t1, {field}: {expected}"
    store = SecretStore(environ={"HTTPTASK_SECRET_X": CANARY})
    with pytest.raises(TemplateError) as rendered:
        render_value(
            "k-{{ secret('X') }}", base_context(inputs={}, secrets=store), task_id="t1", field_path=field
        )
    assert rendered.value.problem == expected
