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
