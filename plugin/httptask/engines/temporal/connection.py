"""Connecting to Temporal: an address and namespace given on the command line, over Temporal's own environment
configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, profiles in
temporal.toml), so TLS and Temporal Cloud work as they do for the `temporal` CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from ...errors import UsageError

__all__ = ["DEFAULT_TASK_QUEUE", "Connection", "connect"]

DEFAULT_TASK_QUEUE = "httptask"


@dataclass(frozen=True)
class Connection:
    """Where runs and workers meet: a Temporal frontend, a namespace and a task queue."""

    address: str | None = None
    namespace: str | None = None
    task_queue: str = DEFAULT_TASK_QUEUE

    def options(self) -> dict[str, Any]:
        """`Client.connect` keyword arguments: the environment's configuration, then what was given here."""
        try:
            options: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
        except (OSError, ValueError, RuntimeError) as exc:
            raise UsageError(
                f"Cannot read Temporal's client configuration ({exc}); check TEMPORAL_CONFIG_FILE "
                "and the TEMPORAL_* environment variables."
            ) from None
        if self.address:
            options["target_host"] = self.address
        if self.namespace:
            options["namespace"] = self.namespace
        options.setdefault("target_host", "localhost:7233")
        return options


async def connect(connection: Connection) -> Client:
    """A client, or a `UsageError` that names the address and says how to start a server."""
    options = connection.options()
    try:
        return await Client.connect(**options)
    except RuntimeError as exc:
        raise UsageError(
            f"Cannot connect to Temporal at {options['target_host']} ({_first_line(exc)}). Start a dev "
            "server with 'httptask temporal dev', or give your cluster's address with --temporal HOST:PORT."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
