"""Connection rate limits: rate-global (connections per second for the server) and
rate-client (connections per 60 s per client IP, sliding window of ten 6-second buckets)."""
import time
import zlib

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


class SharedClientRates:
    """ClientRates for several worker processes: a fixed table in shared memory (created
    before the workers fork), guarded by a process-shared lock. Each slot holds a client IP
    (16 bytes), the tick of its newest bucket and ten bucket counts. An IP hashes to a run of
    PROBE slots; a new IP takes an empty or the stalest slot of its run."""

    import struct as _struct
    SLOT = _struct.Struct("16sq10i")
    PROBE = 8

    def __init__(self, slots=16384, clock=time.monotonic):
        import mmap
        import multiprocessing
        self.slots = slots
        self.clock = clock
        self._memory = mmap.mmap(-1, self.SLOT.size * slots)
        self._lock = multiprocessing.Lock()

    @staticmethod
    def _key(address):
        import ipaddress
        ip = ipaddress.ip_address(address)
        return ip.packed if ip.version == 6 else ipaddress.IPv6Address("::ffff:" + address).packed

    def _read(self, index):
        return list(self.SLOT.unpack_from(self._memory, index * self.SLOT.size))

    def _write(self, index, values):
        self.SLOT.pack_into(self._memory, index * self.SLOT.size, *values)

    def _find(self, key, tick):
        start = zlib.crc32(key) % self.slots  # a hash every worker process computes alike
        stalest, stalest_tick = None, None
        for step in range(self.PROBE):
            index = (start + step) % self.slots
            slot = self._read(index)
            if slot[0] == key:
                return index, slot
            if slot[0] == b"\0" * 16 or tick - slot[1] >= BUCKETS:
                return index, [key, tick] + [0] * BUCKETS
            if stalest is None or slot[1] < stalest_tick:
                stalest, stalest_tick = index, slot[1]
        return stalest, [key, tick] + [0] * BUCKETS

    def hit(self, address):
        key = self._key(address)
        tick = int(self.clock() // BUCKET_SECONDS)
        with self._lock:
            index, slot = self._find(key, tick)
            counts = slot[2:]
            shift = tick - slot[1]
            if shift >= BUCKETS:
                counts = [0] * BUCKETS
            elif shift > 0:
                counts = [0] * shift + counts[:BUCKETS - shift]
            counts[0] += 1
            self._write(index, [key, tick] + counts)
            return sum(counts)


class SharedGlobalRate:
    """GlobalRate for several workers: (second, count) in shared memory."""

    def __init__(self, clock=time.time):
        import mmap
        import multiprocessing
        import struct
        self.clock = clock
        self._cell = struct.Struct("qq")
        self._memory = mmap.mmap(-1, self._cell.size)
        self._lock = multiprocessing.Lock()
        self.count = 0

    def hit(self):
        second = int(self.clock())
        with self._lock:
            stamp, count = self._cell.unpack_from(self._memory, 0)
            count = count + 1 if stamp == second else 1
            self._cell.pack_into(self._memory, 0, second, count)
        self.count = count
        return count
