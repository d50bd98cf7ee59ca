"""The loop guard: noticing a model that keeps writing the same text over and over.

Small models fall into loops ("2 + 40 = 42. 2 + 40 = 42. …") and stream until the output cap,
which may be minutes. The guard watches the text of one round as it grows: when its tail has
been one unit of text repeated for ``min_span`` characters (and at least ``min_repeats``
times), the round is stopped and ends with ``finish_reason: "length"`` and ``STOP_NOTE``.

Ordinary answers do not repeat the same characters exactly for that long; a table or a list
varies from row to row, and the guard compares exact text only. Checking is cheap: only every
``check_every`` characters, and only at shifts where the last few characters occurred before.
"""

from __future__ import annotations

# Appended to the answer a loop was cut from, so a reader knows why it ends there.
STOP_NOTE = "\n\n[stopped: the model kept repeating the same text]"

_PROBE = 32  # characters at the end that must have occurred one period earlier
_MAX_SHIFTS = 64  # candidate periods tried per check


class RepetitionGuard:
    def __init__(
        self, *, min_span: int = 2000, max_period: int = 1000, min_repeats: int = 3, check_every: int = 64
    ) -> None:
        self.min_span = min_span
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.check_every = check_every
        self._window = 2 * max(min_span, min_repeats * max_period) + max_period
        self._text = ""
        self._unchecked: list[str] = []  # pieces since the last check, joined only at the next one
        self._unchecked_len = 0

    def feed(self, text: str) -> bool:
        """Add streamed text; True once the tail is a loop (stop the stream)."""
        if self.min_span <= 0 or not text:
            return False
        self._unchecked.append(text)
        self._unchecked_len += len(text)
        if self._unchecked_len < self.check_every:
            return False
        self._text = (self._text + "".join(self._unchecked))[-self._window :]
        self._unchecked, self._unchecked_len = [], 0
        return self._looping()

    def _looping(self) -> bool:
        s = self._text
        n = len(s)
        if n < self.min_span + 1 or n < _PROBE:
            return False
        probe = s[n - _PROBE :]
        lowest = max(0, n - _PROBE - self.max_period)
        at = s.rfind(probe, lowest, n - 1)
        for _ in range(_MAX_SHIFTS):
            if at == -1:
                return False
            period = n - _PROBE - at
            span = max(self.min_span, self.min_repeats * period)
            if span + period <= n and s[n - span :] == s[n - span - period : n - period]:
                return True
            at = s.rfind(probe, lowest, at + _PROBE - 1)
        return False


def loop_cut(text: str, *, min_span: int = 2000) -> int | None:
    """Where a guard fed ``text`` piece by piece would have stopped it (whole answers)."""
    guard = RepetitionGuard(min_span=min_span)
    step = guard.check_every
    for end in range(step, len(text) + step, step):
        if guard.feed(text[end - step : end]):
            return min(end, len(text))
    return None
