"""What one attempt to send a request says about the server: not sent, answered, or unknown.

These three are the only outcomes, and every engine decides with them what may happen next:

- not sent: no byte of the request reached the server (an invalid URL, a refused destination, a failed DNS
  lookup, a refused connection); sending it again cannot act twice.
- answered: a status line came back. A 4xx says the server did not act; any other status says it did or may
  have (a 5xx can come after the work was done).
- unknown: the request may have reached the server and no usable answer came back (a timeout or a reset after
  the write, a process killed between 'sent' and 'answered'). A request that is not idempotent is never sent
  again without a decision.
"""

from __future__ import annotations

import enum

__all__ = ["Outcome", "final_state", "may_have_acted"]


class Outcome(enum.StrEnum):
    NOT_SENT = "not_sent"
    ANSWERED = "answered"
    UNKNOWN = "unknown"

    @property
    def text(self) -> str:
        """As a sentence says it: 'not sent', 'answered', 'unknown'."""
        return self.value.replace("_", " ")


def may_have_acted(outcome: Outcome, status: int | None = None) -> bool:
    """Whether the server may have done what the request asked, so that sending it again could act twice."""
    if outcome is Outcome.NOT_SENT:
        return False
    if outcome is Outcome.UNKNOWN or status is None:
        return True
    return not 400 <= status < 500


def final_state(outcome: Outcome, status: int | None, *, ok: bool, idempotent: bool) -> str:
    """How a request ends once sending stopped, the same on every engine: `succeeded` (a 2xx answer, used),
    `unknown` (not idempotent, and the server may have acted: a timeout or reset after the write, a 5xx, an
    answer refused after the server acted), which waits for an operator's decision and is never sent again
    without one, or `failed`."""
    if ok:
        return "succeeded"
    return "unknown" if not idempotent and may_have_acted(outcome, status) else "failed"
