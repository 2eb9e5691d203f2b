"""Errors with messages meant for the researcher, not for a debugger."""


class OpdError(Exception):
    """Base class: an expected failure whose message alone explains it."""


class CheckpointError(OpdError):
    """A checkpoint is missing, unreadable, or incompatible with the run."""


class TokenizerMismatchError(CheckpointError):
    """Student and teacher quantize actions differently: the KL target would be silently wrong."""


class DataError(OpdError):
    """Demonstration data is missing or malformed."""


class EnvironmentUnavailable(OpdError):
    """A simulator backend (e.g. LIBERO) is not installed or cannot start."""


class DivergenceError(OpdError):
    """The loss or the gradient norm became non-finite: the run stops before that update is applied."""

    def __init__(self, step: int, loss: float, grad_norm: float, lr: float):
        self.step, self.loss, self.grad_norm, self.lr = step, loss, grad_norm, lr
        super().__init__(f"training diverged at step {step}: loss={loss:.6g}, grad norm={grad_norm:.6g}, "
                         f"lr={lr:g} (the update was not applied; the last checkpoint is the last good state; "
                         "lower lr, or set on_nonfinite: skip to skip such updates)")

    def __reduce__(self):  # picklable, so it crosses process boundaries (study jobs, Celery results)
        return DivergenceError, (self.step, self.loss, self.grad_norm, self.lr)


class CheckpointSkippedWarning(UserWarning):
    """A checkpoint that does not load was skipped on resume (the run continues from an older one)."""
