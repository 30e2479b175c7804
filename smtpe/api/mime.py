"""`mime.parts` and `uri.found` of the current message, from the message scanner
(smtpe._speedups.scanner.MessageScanner; rules in shared/spec/helpers.md §3-4 and
original-behaviour.md §4.5-4.6).

The session calls `publish(ctx, scanner)` once the message is complete (after
scanner.finish()), just before hook.dot:
* mime.parts[i] = {md5_encoded, md5_decoded, part_length, body_length, content_type,
  content_transfer_encoding} for each MIME part, in message order (1 = the top level);
* uri.found holds each URI once: its key, the lower-case hex MD5 of uri_raw, is appended to
  the array part (so `#uri.found` counts unique URIs and ipairs yields keys) and
  uri.found[key] = {uri_raw, uri_decoded, scheme, scheme_info, user_info, host, port, path,
  query, fragment, mime_part}. The first occurrence wins.
The tables are the connection's own (ctx.mime, ctx.uri_found, made afresh at MAIL); entries
go after any already there.
"""
import hashlib


def publish(ctx, scanner):
    to_lua = ctx.engine.to_lua
    parts = ctx.mime[b"parts"]
    count = len(parts)
    for part in scanner.parts:
        count += 1
        parts[count] = to_lua(part)
    found = ctx.uri_found
    count = len(found)
    for uri in scanner.uris:
        key = hashlib.md5(uri["uri_raw"]).hexdigest().encode("ascii")
        if found[key] is not None:
            continue
        count += 1
        found[count] = key
        found[key] = to_lua(uri)
