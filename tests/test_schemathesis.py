"""Property-based tests of the editor's API from its own OpenAPI document: no 500s, and every response
matches the document (status codes, content types, bodies). Bounded to a few seconds per operation.

Generated tasks may name any URL: the SSRF guard is on, the sandbox is the only allowed host, names resolve
from an empty table, and the loopback tripwire refuses anything else, so nothing leaves this machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from browser_setup import running_editor
from httptask.catalog import Catalog
from httptask.netguard import static_resolve
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig


@pytest.fixture(scope="module")
def editor_url(
    catalog: Catalog, sandbox: SandboxThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # Names resolve to nothing and calls end in 2 s: generated requests must not wait on the world.
    config = ServerConfig(sandbox_url=sandbox.url, resolve=static_resolve({}), call_timeout_seconds=2)
    # A generated workflow that happens to be valid runs, journaled here rather than in the user's journal.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HTTPTASK_JOURNAL", str(tmp_path_factory.mktemp("journal") / "journal.sqlite3"))
        with running_editor(config, catalog) as url:
            yield url


@pytest.fixture(scope="module")
def api_schema(editor_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{editor_url}/openapi.json")


ROUTES = [
    ("GET", "/api/operations"),
    ("GET", "/api/operations/{operation_id}"),
    ("POST", "/api/tasks"),
    ("POST", "/api/test-request"),
    ("POST", "/api/validate"),
    ("GET", "/api/examples"),
    ("GET", "/api/examples/{name}"),
    ("POST", "/api/workflows/insert-task"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/{run_id}"),
    ("GET", "/api/runs/{run_id}/events"),
]


TAKES_NOTHING = {("GET", "/api/examples")}


def test_every_route_is_covered(api_schema: Any) -> None:
    document = api_schema.raw_schema["paths"]
    assert sorted((method.upper(), path) for path, item in document.items() for method in item) == sorted(
        ROUTES
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_api_keeps_its_document(api_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    if mode == GenerationMode.NEGATIVE and (method, path) in TAKES_NOTHING:
        pytest.skip(f"{method} {path} takes no parameters or body, so there is nothing to make invalid")
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
            timeout=10,
        )

    check()
