"""One exception type for every problem a user can fix.

The entry points catch :class:`UserError`, print its message as one line and exit non-zero,
so bad input never ends in a traceback or a half-written run folder. A message says what is
wrong and what to do, e.g. ``"data.jsonl line 7: missing field 'answer' (set dataset.answer_field)"``.
"""


class UserError(Exception):
    """A problem with the user's input or configuration, reported as one clear line."""
