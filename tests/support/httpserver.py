"""A local HTTP server for tests (Python's http.server in a thread, 127.0.0.1, port chosen by
the system).

/doc        GET/HEAD: a fixed document with Last-Modified, Date, Expires, Content-Type and
            Content-Encoding; honours If-Modified-Since (304).
/echo       POST: answers with the request body, its method and its Content-Type.
/missing    404.
/redirect   302 to /doc.
Every request is recorded in `requests` as (method, path, headers dict, body).
"""
import email.utils
import http.server
import threading

LAST_MODIFIED = 1_700_000_000         # 2023-11-14T22:13:20Z
EXPIRES = 1_900_000_000
DOCUMENT = b"policy data\r\nline two\r\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "smtpe-test"

    def log_message(self, *args):
        pass

    def _record(self, body=b""):
        self.server.requests.append((self.command, self.path, dict(self.headers.items()), body))

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        if code != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code != 304:
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._record()
        if self.path == "/doc":
            since = self.headers.get("If-Modified-Since")
            parsed = email.utils.parsedate_to_datetime(since).timestamp() if since else None
            if parsed is not None and parsed >= LAST_MODIFIED:
                self._send(304)
                return
            self._send(200, DOCUMENT, [
                ("Last-Modified", email.utils.formatdate(LAST_MODIFIED, usegmt=True)),
                ("Expires", email.utils.formatdate(EXPIRES, usegmt=True)),
                ("Content-Type", "text/plain; charset=us-ascii"),
                ("Content-Encoding", "identity")])
        elif self.path == "/redirect":
            self._send(302, b"", [("Location", "/doc")])
        else:
            self._send(404, b"not found\n", [("Content-Type", "text/plain")])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if self.path != "/echo":
            self._send(404)
            return
        self._send(200, body, [("Content-Type", "text/plain"), ("X-Method", self.command),
                               ("X-Request-Type", self.headers.get("Content-Type", ""))])


class HttpServer:
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.requests = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    @property
    def requests(self):
        return self.server.requests

    def url(self, path):
        return ("http://127.0.0.1:%d%s" % (self.port, path)).encode()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
