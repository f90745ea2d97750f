"""The command-line commands that use data sets and model files: train, evaluate, predict."""


class TrainingFailed(RuntimeError):
    """Training diverged; the message says where and what to try. The CLI exits with 1."""
