"""One module per Lua namespace. Every module here with an `install(api)` function is
installed into the master Lua state by the engine (see smtpe.engine.Api).

Conventions for the modules:
* Strings cross the Lua boundary as bytes (the runtime has no encoding): arguments arrive as
  bytes, and results must be bytes, numbers, booleans, None or Lua tables (api.table(...)).
* Numeric "flag" arguments accept numbers and booleans: use `flag()`; numbers `integer()`;
  strings `string_arg()` (not `text`: that name is the smtpe.api.text submodule).
* Per-connection state lives on the Context returned by `api.current()`.
"""


def flag(value, default=False):
    """A Lua flag argument: nil -> default, boolean as is, number -> non-zero."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, bytes):
        try:
            return int(value.split(b".")[0] or 0) != 0
        except ValueError:
            return True
    return True


def integer(value, default=0):
    """A Lua number argument with C optint semantics: nil -> default, truncated integer."""
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise TypeError("number expected, got %s" % type(value).__name__) from None


def string_arg(value, default=None):
    """A Lua string argument as bytes (numbers are formatted as Lua would)."""
    if value is None:
        return default
    if isinstance(value, bytes):
        return value
    if isinstance(value, float) and value.is_integer():
        return b"%d" % value
    if isinstance(value, (int, float)):
        return str(value).encode()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError("string expected, got %s" % type(value).__name__)
