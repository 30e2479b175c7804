"""Connection rate limits: rate-global (connections per second for the server) and
rate-client (connections per 60 s per client IP, sliding window of ten 6-second buckets)."""
import time

BUCKET_SECONDS = 6
BUCKETS = 10


class ClientRates:
    """Per-IP counts over the last minute. A bounded table: the stalest entries go first."""

    def __init__(self, max_clients=16384, clock=time.monotonic):
        self.max_clients = max_clients
        self.clock = clock
        self._table = {}   # ip -> [tick of newest bucket, counts...]

    def hit(self, address):
        """Count a connection from `address`; -> connections in the window, this one included."""
        tick = int(self.clock() // BUCKET_SECONDS)
        entry = self._table.pop(address, None)
        if entry is None:
            if len(self._table) >= self.max_clients:
                self._table.pop(next(iter(self._table)))
            entry = [tick] + [0] * BUCKETS
        shift = tick - entry[0]
        if shift >= BUCKETS:
            entry[1:] = [0] * BUCKETS
        elif shift > 0:
            entry[1:] = [0] * shift + entry[1:BUCKETS + 1 - shift]
        entry[0] = tick
        entry[1] += 1
        self._table[address] = entry   # re-insert: most recent last
        return sum(entry[1:])

    def forget(self, address):
        """Undo one count (a refused connection does not use up the allowance further)."""
        entry = self._table.get(address)
        if entry is not None and entry[1] > 0:
            entry[1] -= 1


class GlobalRate:
    """Connections in the current wall-clock second."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.second = None
        self.count = 0

    def hit(self):
        second = int(self.clock())
        if second != self.second:
            self.second, self.count = second, 0
        self.count += 1
        return self.count
