"""Lua `client.write(text)`: send raw reply lines (e.g. 214- continuation lines) to this
client, waiting until they are sent. The other `client.*` fields are set by the session."""

from ..waits import Callback, Done


def install(api):
    engine = api.engine
    options = api.options

    def write(message=None, timeout=None):
        ctx = api.current()
        if ctx is None or ctx.session is None or message is None:
            return Done(False)
        data = message if isinstance(message, bytes) else str(message).encode()
        seconds = float(timeout) if timeout is not None else options.float("smtp-reply-timeout")
        return Callback(lambda resume: ctx.session.write_raw(data, seconds, resume))

    engine.client_write = engine.make_waiting(write)
