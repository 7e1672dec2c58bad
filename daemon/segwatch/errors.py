"""The error hierarchy: what went wrong decides what the daemon does next."""


class SegwatchError(Exception):
    """Base of every error segwatch raises on purpose."""


class ConfigError(SegwatchError):
    """The configuration is unusable: report it and exit with status 2."""


class ArtifactError(SegwatchError):
    """One artifact is bad: log one line naming the file and the reason, set it aside, go on."""


class NotReadyError(ArtifactError):
    """A file is still being written (shorter than its header promises): wait, do not set aside."""


class SinkError(SegwatchError):
    """The output is broken (logdir unwritable, disk full): keep the artifact pending, retry, then stop."""


class RetryableError(NotReadyError):
    """A file cannot be read now for a reason that can heal (permissions, descriptors, transient I/O): the
    artifact waits and is retried with backoff, reported once; it is never set aside for this."""
