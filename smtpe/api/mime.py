"""`mime.parts` and `uri.found` of the current message, from the message scanner.

The session calls `publish(ctx, scanner)` once the message is complete, before hook.dot.
`uri.found` holds each URI once, keyed by the MD5 (hex) of its raw text, with the keys also
in the array part so `#uri.found` and ipairs work (shared/smtpe-api.txt)."""
import hashlib

PART_FIELDS = ("md5_encoded", "md5_decoded", "part_length", "body_length", "content_type",
               "content_transfer_encoding")
URI_FIELDS = ("uri_raw", "uri_decoded", "scheme", "scheme_info", "user_info", "host", "port",
              "path", "query", "fragment", "mime_part")


def publish(ctx, scanner):
    lua = ctx.engine.lua
    parts = ctx.mime[b"parts"]
    for index, part in enumerate(scanner.parts, 1):
        entry = lua.table()
        for name in PART_FIELDS:
            entry[name.encode()] = part[name]
        parts[index] = entry
    found = ctx.uri_found
    count = 0
    for uri in scanner.uris:
        key = hashlib.md5(uri["uri_raw"]).hexdigest().encode()
        if found[key] is not None:
            continue
        entry = lua.table()
        for name in URI_FIELDS:
            entry[name.encode()] = uri.get(name)
        count += 1
        found[count] = key
        found[key] = entry
