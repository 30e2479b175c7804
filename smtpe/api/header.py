"""Lua `header.*`: edit the current message's header list. Edits made up to hook.dot are
written to the spool file before forwarding. Indexes and instances are 1-based; instance N
is the Nth occurrence anywhere in the list (DECISIONS.md)."""
from . import integer, string_arg as text


def _matches(entry, name):
    """`Name:` at the start of the entry, case-insensitively, no space before the colon."""
    size = len(name)
    return len(entry) > size and entry[size:size + 1] == b":" and entry[:size].lower() == name


def _positions(headers, name):
    name = name.lower()
    return [index for index, entry in enumerate(headers) if _matches(entry, name)]


def install(api):
    table = api.namespace("header")

    def context():
        ctx = api.current()
        if ctx is None:
            raise RuntimeError("header functions need a client context")
        return ctx

    def changed(ctx):
        ctx.headers_dirty = True

    def add(line):
        ctx = context()
        ctx.headers.append(text(line))
        changed(ctx)

    def insert(line, index=None):
        ctx = context()
        position = max(integer(index, 1), 1) - 1
        ctx.headers.insert(min(position, len(ctx.headers)), text(line))
        changed(ctx)

    def delete(name, instance=None):
        ctx = context()
        positions = _positions(ctx.headers, text(name))
        nth = integer(instance, 1)
        if 1 <= nth <= len(positions):
            del ctx.headers[positions[nth - 1]]
            changed(ctx)

    def modify(name, instance=None, value=None):
        ctx = context()
        name, nth = text(name), integer(instance, 1)
        if name is None or value is None or nth < 0:
            return
        line = name + b": " + text(value)
        headers = ctx.headers
        positions = _positions(headers, name)
        if not positions:
            headers.append(line)
        elif nth == 0:
            headers.insert(positions[0], line)
        elif nth <= len(positions):
            headers[positions[nth - 1]] = line
        else:
            headers.insert(positions[-1] + 1, line)
        changed(ctx)

    def find(name, instance=None):
        ctx = context()
        name = text(name)
        positions = _positions(ctx.headers, name)
        nth = integer(instance, 1)
        if not 1 <= nth <= len(positions):
            return None, None
        index = positions[nth - 1]
        return index + 1, ctx.headers[index][len(name) + 1:].lstrip(b" \t")

    for function in (add, insert, delete, modify, find):
        table[function.__name__.encode()] = function
