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
    """The loss, the gradient norm or the student's action logits became non-finite: the run stops at that step,
    before anything of it is applied or saved."""

    def __init__(self, step: int, loss: float, grad_norm: float, lr: float, where: str = ""):
        self.step, self.loss, self.grad_norm, self.lr, self.where = step, loss, grad_norm, lr, where
        values = f"loss={loss:.6g}, grad norm={grad_norm:.6g}, lr={lr:g}"
        what = f"{where} (last update: {values})" if where else f"{values} (the update was not applied)"
        super().__init__(
            f"training diverged at step {step}: {what}; the last checkpoint is the last good state. "
            "Lower lr, or set on_nonfinite: skip to skip non-finite updates"
        )

    def __reduce__(self):  # picklable, so it crosses process boundaries (study jobs, Celery results)
        return DivergenceError, (self.step, self.loss, self.grad_norm, self.lr, self.where)


class CheckpointSkippedWarning(UserWarning):
    """A checkpoint that does not load was skipped on resume (the run continues from an older one)."""
