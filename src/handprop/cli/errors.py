"""What a command raises for ``main`` to turn into an exit code other than 2."""


class TrainingFailed(RuntimeError):
    """Training diverged; the message says where and what to try. The CLI exits with 1."""


class Interrupted(Exception):
    """Ctrl-C during training; the message says what was saved and how to go on. Exit 130."""
