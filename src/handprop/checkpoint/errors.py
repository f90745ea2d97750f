"""ModelFileError, and the helpers that word its messages."""


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be written or read; the message says why."""
