"""The error type for mistakes a user can fix (bad config, missing data, unusable workdir)."""


class UserError(Exception):
  """A problem caused by the user's input; the message says what is wrong and how to fix it.

  Entry points print it as one line and exit non-zero without a traceback.
  """


class RunInterrupted(Exception):
  """A run stopped by SIGTERM/SIGINT after saving a checkpoint; re-running resumes it."""

  exit_code = 75  # EX_TEMPFAIL: a temporary failure, try again.
