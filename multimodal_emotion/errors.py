"""One exception family, so the shells (CLI, HTTP) can map each kind of failure to an exit code
or status without parsing messages."""


class MerError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class MediaError(MerError):
    """The input media cannot be read: corrupt, unsupported, empty, or missing."""

    exit_code = 3


class MediaLimitError(MediaError):
    """The media is readable but passes a limit set to bound memory and time (duration, frame
    size); the message names the limit and how to raise it."""


class ModelError(MerError):
    """A model or checkpoint is missing, malformed or incompatible with the config."""

    exit_code = 4


class InputError(MerError):
    """The caller passed arguments that make no sense (wrong shape, unknown name, ...)."""

    exit_code = 2


class DeviceError(MerError):
    """A capture device (microphone, camera) that was asked for is not there or not usable;
    the message says which and what to install or plug in."""

    exit_code = 5
