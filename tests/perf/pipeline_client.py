"""A small SMTP load generator of our own: many non-blocking sessions on one selector.

Postfix smtp-source sends one command per round trip; this client uses PIPELINING
(RFC 2920) the way an MTA does: EHLO, then MAIL, RCPT and DATA in one write, then the
message and the final dot (with QUIT pipelined after the dot when the connection ends).
It also holds idle connections open for the memory workload (`open_idle`).

    python tests/perf/pipeline_client.py --port 2525 --sessions 20 --messages 10000 --size 5120

prints the result as JSON: messages delivered, seconds, msg_per_s, errors.
"""
import argparse
import json
import selectors
import socket
import time

SENDER = b"sender@client.example.org"
RECIPIENT = b"rcpt@example.org"
HELO = b"client.example.org"


def make_message(size):
    """A plain text message with `size` bytes of body in 76-byte lines (no dot stuffing
    needed), headers included."""
    header = (b"From: <%s>\r\nTo: <%s>\r\nSubject: load test\r\nMessage-ID: <load@client.example.org>\r\n\r\n"
              % (SENDER, RECIPIENT))
    line = b"x" * 74 + b"\r\n"
    body = line * (size // len(line)) + b"y" * (size % len(line))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return header + body


class Load:
    """Shared counters of one run: messages still to start, delivered, failed."""

    def __init__(self, messages):
        self.to_start = messages
        self.delivered = 0
        self.failed = 0
        self.errors = []

    def take(self):
        if self.to_start <= 0:
            return False
        self.to_start -= 1
        return True

    def error(self, text):
        self.failed += 1
        if len(self.errors) < 10:
            self.errors.append(text)


class Session:
    """One connection. Its dialogue is a generator yielding (bytes to send, replies to
    wait for) and receiving the list of reply codes."""

    def __init__(self, client, new_connection_each):
        self.client = client
        self.new_connection_each = new_connection_each
        self.sock = None
        self.out = b""
        self.inbuf = bytearray()
        self.wanted = 0
        self.codes = []
        self.reply_text = b""    # the lines of the replies awaited now (EHLO keywords)
        self.steps = None

    # -- the SMTP dialogue ------------------------------------------------------------------
    def dialogue(self):
        client, load = self.client, self.client.load
        codes = yield b"", 1
        if codes[0] != 220:
            raise ValueError("banner %d" % codes[0])
        codes = yield b"EHLO " + HELO + b"\r\n", 1
        if codes[0] != 250:
            raise ValueError("EHLO %d" % codes[0])
        if client.pipelining and b"PIPELINING" not in self.reply_text.upper():
            raise ValueError("PIPELINING not advertised")
        while load.take():
            quit_after = self.new_connection_each or load.to_start <= 0
            envelope = (b"MAIL FROM:<%s>\r\n" % SENDER, b"RCPT TO:<%s>\r\n" % RECIPIENT, b"DATA\r\n")
            if client.pipelining:
                codes = yield b"".join(envelope), 3
            else:
                codes = []
                for command in envelope:
                    codes += yield command, 1
                    if codes[-1] >= 400:
                        break
            if codes != [250, 250, 354]:
                load.error("envelope replies %s" % codes)
                return
            ending = client.message + b".\r\n"
            if quit_after and client.pipelining:
                codes = yield ending + b"QUIT\r\n", 2
            else:
                codes = yield ending, 1
            if codes[0] != 250:
                load.error("end of data reply %d" % codes[0])
                return
            load.delivered += 1
            if quit_after:
                if not client.pipelining:
                    yield b"QUIT\r\n", 1
                return
        yield b"QUIT\r\n", 1

    # -- driving ------------------------------------------------------------------------
    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbuf.clear()
        self.steps = self.dialogue()
        try:
            self.sock.connect((self.client.host, self.client.port))
        except BlockingIOError:
            pass
        self.client.selector.register(self.sock, selectors.EVENT_WRITE, self.on_connected)

    def on_connected(self):
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.fail("connect: %s" % error)
            return
        self.client.selector.modify(self.sock, selectors.EVENT_READ, self.on_readable)
        self.advance(None)

    def advance(self, codes):
        try:
            data, self.wanted = self.steps.send(codes)
        except StopIteration:
            self.close(again=True)
            return
        except ValueError as exc:
            self.fail(str(exc))
            return
        self.codes = []
        self.reply_text = b""
        if data:
            self.send(data)

    def send(self, data):
        """Send what the socket takes; the rest waits for writability (on_ready)."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.fail("send: %s" % exc)
            return
        waiting, self.out = bool(self.out), data[sent:]
        if self.out and not waiting:
            self.client.selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self.on_ready)
        elif waiting and not self.out:
            self.client.selector.modify(self.sock, selectors.EVENT_READ, self.on_readable)

    def on_ready(self):
        """Readable or writable while output is pending."""
        if self.out:
            self.send(self.out)
        self.on_readable()

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail("recv: %s" % exc)
            return
        if not data:
            self.fail("connection closed by server")
            return
        inbuf = self.inbuf
        inbuf += data
        while self.wanted:
            end = inbuf.find(b"\n")
            if end < 0:
                return
            line = bytes(inbuf[:end + 1])
            del inbuf[:end + 1]
            self.reply_text += line
            if line[3:4] == b"-":
                continue
            try:
                self.codes.append(int(line[:3]))
            except ValueError:
                self.fail("bad reply %r" % line[:40])
                return
            self.wanted -= 1
            if not self.wanted:
                self.advance(self.codes)
                if self.sock is None:
                    return

    def fail(self, text):
        self.client.load.error(text)
        self.close(again=False)

    def close(self, again):
        if self.sock is not None:
            self.client.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
        if again and self.client.load.to_start > 0:
            self.connect()
        else:
            self.client.sessions_open -= 1


class Client:
    def __init__(self, host, port, sessions, messages, size, new_connection_each, pipelining):
        self.host = host
        self.port = port
        self.sessions = sessions
        self.load = Load(messages)
        self.message = make_message(size)
        self.new_connection_each = new_connection_each
        self.pipelining = pipelining
        self.selector = selectors.DefaultSelector()
        self.sessions_open = 0

    def run(self, timeout):
        started = time.perf_counter()
        deadline = started + timeout
        for _ in range(self.sessions):
            self.sessions_open += 1
            Session(self, self.new_connection_each).connect()
        timed_out = False
        while self.sessions_open > 0:
            now = time.perf_counter()
            if now > deadline:
                timed_out = True
                break
            for key, _ in self.selector.select(min(1.0, deadline - now)):
                key.data()
        seconds = time.perf_counter() - started
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()
        load = self.load
        return {"messages": load.delivered, "failed": load.failed, "seconds": seconds,
                "msg_per_s": load.delivered / seconds if seconds > 0 else 0.0,
                "timed_out": timed_out, "errors": load.errors}


def run(host="127.0.0.1", port=25, sessions=20, messages=10000, size=5120,
        new_connection_each=False, pipelining=True, timeout=300.0):
    """Deliver `messages` over `sessions` parallel connections; -> result dict."""
    client = Client(host, port, sessions, messages, size, new_connection_each, pipelining)
    return client.run(timeout)


def open_idle(host, port, count, timeout=10.0):
    """`count` connections that got the banner and an EHLO reply and then stay idle.
    -> the list of sockets (the caller closes them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=timeout)
            sockets.append(sock)
            _read_reply(sock)
            sock.sendall(b"EHLO " + HELO + b"\r\n")
            _read_reply(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _read_reply(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by server")
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and any(line[3:4] == b" " for line in lines[:-1]):
            return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--new-connection", action="store_true", help="one connection per message")
    parser.add_argument("--no-pipelining", action="store_true", help="one command per round trip")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    result = run(args.host, args.port, args.sessions, args.messages, args.size,
                 args.new_connection, not args.no_pipelining, args.timeout)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
