"""Where smtpe's time goes, by component, from py-spy samples (`py-spy record -f raw`:
one folded stack per line, "frame;frame;... count").

A sample goes to the component of its innermost smtpe frame: socket calls count for the
module that makes them, standard-library frames (selectors, re, socket.py) for the smtpe
module that called them. (Attributing whole stacks would be wrong here: the dialogue
continues inside the callbacks of hooks and deliveries.) Code in C (Lua, the Cython line
reader and scanner, the compiled client socket transport, outbound stream, timers and
smart-host client) counts for the Python frame that called it: a client's reads and
replies mostly for the event loop, the session or the end of its turn; the smart host's
transaction for the session (that starts it) and the event loop (that delivers its replies). Threads
other than the event loop (pycares' idle shutdown thread) are left out.

    python tests/perf/breakdown.py samples.txt
"""
import collections
import sys

COMPONENTS = [
    ("connecting to the smart host (netclient)", ("netclient.py",)),
    ("Lua hooks: engine, coroutines, Lua code", ("engine.py",)),
    ("Lua API namespaces (mime.parts, uri.found, ...)", ("smtpe/api/",)),
    ("DNS (pycares)", ("smtpe/dns.py",)),
    ("spool file", ("spool.py",)),
    ("logging", ("smtpe/log.py",)),
    ("DATA: line reader, scanner (delivery)", ("delivery.py",)),
    # (the compiled loop's own work, the client transport's reads and end-of-turn sends count
    # here: the loop runs inside Worker.serve, and it calls them)
    ("event loop and the client socket (select, timers, recv, send)", ("Worker.serve",)),
    ("accepting connections (server)", ("smtpe/server.py",)),
    ("SMTP dialogue (session, protocol, options)",
     ("session.py", "protocol.py", "smtpe/ids.py", "options.py", "waits.py")),
]


def categorize(frames):
    for frame in reversed(frames):
        for name, keys in COMPONENTS:
            if any(key in frame for key in keys):
                return name
    return "other"


def breakdown(lines):
    """-> (Counter of samples per component, total samples of the main thread)."""
    counts = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or "_bootstrap" in stack:   # a thread other than the event loop
            continue
        if not count.isdigit():   # py-spy --nonblocking can read a frame mid-change: garbage
            continue
        count = int(count)
        total += count
        counts[categorize(stack.split(";"))] += count
    return counts, total


def report(path, messages=None, busy_seconds=None):
    """Print the share of each component (and µs per message when the CPU time and the
    message count are known)."""
    with open(path) as handle:
        counts, total = breakdown(handle)
    if not total:
        print("no samples in %s" % path)
        return {}
    shares = {}
    for name, count in counts.most_common():
        share = count / total
        shares[name] = share
        per_message = ""
        if messages and busy_seconds:
            per_message = "%7.0f us/msg" % (share * busy_seconds / messages * 1e6)
        print("%5.1f%% %s %s" % (share * 100, per_message, name))
    return shares


if __name__ == "__main__":
    report(sys.argv[1])
