"""keys: a derived idempotency key is `uuid.uuid5` of its seed in the namespace of every key derived so far,
written out without the `UUID` object."""

from __future__ import annotations

import uuid

from httptask.keys import derive_key


def test_a_derived_key_is_the_uuid5_of_its_seed() -> None:
    namespace = uuid.UUID("6f1c1d52-8f0a-4d4e-9a57-1f3c2b8e7a10")
    for seed in ("", "run-1/refund/0", "é/日本/🎉", "x" * 10_000, *(f"r/{n}" for n in range(2_000))):
        assert derive_key(seed) == str(uuid.uuid5(namespace, seed))
