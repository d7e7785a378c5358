"""The editor serves others: one run started from it must not stop it answering everyone else."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from browser_setup import running_editor
from httptask.catalog import Catalog
from httptask.sandbox import SandboxThread
from httptask.server import ServerConfig

# Each item's path renders for about its whole 1 s limit; it reads an earlier answer, so the check before the
# run cannot render it in a worker: it renders when the run reaches it, on the editor's event loop.
SPIN = "{% for i in range(1000) %}{% for j in range(8000) %}{% endfor %}{% endfor %}"
HOG = f"""
name: hog
tasks:
  - id: fetch
    operation: zoho-billing.get_credit_note_refund
    credentials: ZOHO_OAUTH_TOKEN
    request:
      path: {{refund_id: r1}}
      headers: {{X-com-zoho-subscriptions-organizationid: o1}}
  - id: burn
    needs: [fetch]
    operation: zoho-billing.get_credit_note_refund
    credentials: ZOHO_OAUTH_TOKEN
    forEach: "{{{{ range(tasks.fetch.response.status * 0 + 12) | list }}}}"
    request:
      path: {{refund_id: "{{% if tasks.fetch.response.status %}}{SPIN}{{% endif %}}{{{{ item }}}}"}}
      headers: {{X-com-zoho-subscriptions-organizationid: o1}}
"""


def test_a_run_of_slow_templates_does_not_stop_the_editor_answering(
    catalog: Catalog, sandbox: SandboxThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPTASK_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.setenv("HTTPTASK_SECRET_ZOHO_OAUTH_TOKEN", "zoho-token")
    with (
        running_editor(ServerConfig(sandbox_url=sandbox.url), catalog, own_secrets=True) as editor,
        httpx.Client(base_url=editor, timeout=60) as client,
    ):
        started = client.post("/api/runs", json={"workflow": HOG, "input": {}})
        assert started.status_code == 202, started.text
        run = f"/api/runs/{started.json()['run_id']}"
        waits = []
        ends = time.monotonic() + 60
        while time.monotonic() < ends:  # until the run ends
            asked = time.monotonic()
            state = client.get(run).json()
            waits.append(time.monotonic() - asked)
            if state["status"] != "running":
                break
            time.sleep(0.2)
        # The run did what it is here for: every item's template ran to its limit.
        burn = state["tasks"][1]
        assert (burn["task"], burn["items"]) == ("burn", {"failed": 12}), state
        assert max(waits) < 6, waits
