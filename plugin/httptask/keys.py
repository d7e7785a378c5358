"""Idempotency keys derived from a seed (a run, a task and an item): the same after a retry, a crash and a
resume. Standard library only, so the journal's writer process tells a derived key from a templated one."""

from __future__ import annotations

import hashlib

__all__ = ["derive_key", "is_derived", "step_seed"]

# uuid.UUID("6f1c1d52-8f0a-4d4e-9a57-1f3c2b8e7a10").bytes: the namespace of every key derived so far.
_KEY_HASH = hashlib.sha1(bytes.fromhex("6f1c1d528f0a4d4e9a571f3c2b8e7a10"), usedforsecurity=False)


# The hex digit that starts a key's fourth group: the digest's, with its top two bits set to the RFC 4122
# variant (10).
_VARIANT = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


def derive_key(seed: str) -> str:
    """The idempotency key for `seed`: the same seed always gives the same key, `uuid.uuid5(namespace, seed)`
    written out here from the digest's hex digits, without the `UUID` object it makes (a few microseconds
    for every item of a run): the version's digit (5) and the variant's bits replace the digest's."""
    digest = _KEY_HASH.copy()
    digest.update(seed.encode("utf-8"))
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def step_seed(run_id: str, task_id: str, item: int) -> str:
    """The seed of one request of a run (a task, or one item of a forEach task): its derived key is the same
    across retries, crashes, resumes and engines, and different for every run, task and item."""
    return f"{run_id}/{task_id}/{item}"


def is_derived(key: str, run_id: str, task_id: str, item: int) -> bool:
    """Whether `key` is the key derived for this request of the run, which no other request is sent with."""
    return key == derive_key(step_seed(run_id, task_id, item))
