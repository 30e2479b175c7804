"""Lua `smtpe.*`: version strings, the host name, and run-time option access."""
from .. import API_VERSION, COPYRIGHT, VERSION
from . import string_arg as text


def install(api):
    table = api.namespace("smtpe")
    options = api.options
    table[b"bin_version"] = VERSION.encode()
    table[b"api_version"] = API_VERSION.encode()
    table[b"copyright"] = COPYRIGHT.encode()
    table[b"host"] = api.engine.host_name.encode()

    def getoption(name):
        key = text(name, b"").decode("utf-8", "replace")
        if not options.known(key):
            return None
        return options.get(key).encode("utf-8")

    def setoption(name, value):
        key = text(name, b"").decode("utf-8", "replace")
        if value is None or not options.known(key):
            return False
        value = text(value).decode("utf-8", "replace")
        if value.startswith(";"):
            value = options.get(key) + value
        options.set(key, value)
        return True

    table[b"getoption"] = getoption
    table[b"setoption"] = setoption
