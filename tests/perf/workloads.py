"""The workloads of the benchmark suite and how each is measured side by side: Postfix
smtp-sink first (the reference ceiling), then smtpe with workers=1 and with the default
worker count, all under the same load in the same invocation."""
import os
import time
from dataclasses import dataclass, replace

from tests.perf import peers, pipeline_client
from tests.support.net import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRIVIAL_SCRIPT = os.path.join(HERE, "scripts", "trivial.lua")
POLICY_SCRIPT = os.path.join(ROOT, "lua", "examples", "policy.lua")
QUICK_DIVISOR = 10


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    load: str                 # "smtp-source", "pipeline" or "idle"
    messages: int = 0
    size: int = 5120
    sessions: int = 20
    reuse: bool = True        # several messages per connection
    connections: int = 0      # idle workload
    script: str = "trivial"   # or "accept" (trivial, not forwarded), "policy", "policy-scan"
    reference: str = ""       # workload whose smtp-sink figure serves as reference

    @property
    def unit(self):
        return "KB/conn" if self.load == "idle" else "msg/s"

    def quick(self):
        if self.load == "idle":
            return self
        return replace(self, messages=max(self.messages // QUICK_DIVISOR, self.sessions * 5))


WORKLOADS = [
    Workload("a", "20 sessions, new connection per message, 5 KB", "smtp-source", 10000, reuse=False),
    Workload("b", "20 sessions reusing connections, 5 KB", "smtp-source", 10000),
    Workload("b-pipe", "as b, PIPELINING (our client)", "pipeline", 10000),
    # like for like with the peers and smtp-sink, which accept and forward nothing
    Workload("b-accept", "as b, accepted without forwarding (as the peers do)", "smtp-source", 10000,
             script="accept", reference="b"),
    Workload("c", "20 sessions, new connection per message, 100 KB", "smtp-source", 2000, size=102400,
             reuse=False),
    Workload("d", "200 connections idle after EHLO: RSS per connection", "idle", connections=200),
    Workload("policy", "as b, lua/examples/policy.lua", "smtp-source", 10000, script="policy",
             reference="b"),
    Workload("policy-scan", "as policy, with clamd and spamd calls (refused at once)", "smtp-source",
             10000, script="policy-scan", reference="b"),
]


def by_name(names=None):
    if not names:
        return list(WORKLOADS)
    known = {workload.name: workload for workload in WORKLOADS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit("unknown workload(s): %s (known: %s)" % (", ".join(unknown), ", ".join(known)))
    return [known[name] for name in names]


# -- applying load -----------------------------------------------------------------------------
def measure(workload, server, timeout):
    """Apply the load to `server` (a peers.Sink or peers.Smtpe); -> result dict with msg_per_s
    and cpu_us_per_msg, the server's CPU time (user + system, all its processes) per message:
    on a shared machine that figure moves much less than throughput does."""
    before = peers.cpu_seconds(server.pids)
    result = apply_load(workload, server.port, timeout)
    used = peers.cpu_seconds(server.pids) - before
    if result.get("messages"):
        result["cpu_us_per_msg"] = used / result["messages"] * 1e6
    return result


def apply_load(workload, port, timeout):
    """Run the workload's load against a server on `port`; -> result dict with msg_per_s."""
    if workload.load == "pipeline":
        result = pipeline_client.run("127.0.0.1", port, workload.sessions, workload.messages,
                                     workload.size, new_connection_each=not workload.reuse,
                                     pipelining=True, timeout=timeout)
        if result["failed"] or result["timed_out"] or result["messages"] < workload.messages:
            result["error"] = "; ".join(dict.fromkeys(result["errors"])) or "timed out"
        return result
    return peers.smtp_source(port, workload.sessions, workload.messages, workload.size,
                             workload.reuse, timeout)


def idle_memory(pids_of, port, connections, warm=200, settle=0.5):
    """KB of RSS per connection held idle after EHLO. `warm` connections are opened first
    and stay open: the first ones of a fresh process cost less than the following (free
    memory the process already has absorbs them), so the figure is the growth while
    `connections` more are opened on top."""
    held = pipeline_client.open_idle("127.0.0.1", port, warm)
    try:
        time.sleep(settle)
        before = peers.rss_kb(pids_of())
        held += pipeline_client.open_idle("127.0.0.1", port, connections)
        time.sleep(settle)
        after = peers.rss_kb(pids_of())
    finally:
        for sock in held:
            sock.close()
    return {"connections": connections, "warm": warm, "rss_before_kb": before, "rss_after_kb": after,
            "kb_per_conn": (after - before) / connections}


# -- the servers -------------------------------------------------------------------------------
def policy_environment(scanners=False):
    """The example policy's settings for the benchmark, as the performance issue describes
    the workload: PTR, forward confirmation and one IP blocklist (`dnsbl.bench`, 127.0.0.1 not
    listed) against the benchmark's DNS server, a URI blocklist (smtp-source's message holds
    no URI), header edits, the MIME/URI scan, recipients limited to example.org. No scanners:
    a real clamd or spamd costs milliseconds, which would measure them, not smtpe.
    `scanners`: clamd and spamd are asked too, on ports nobody listens on (each call fails at
    once, and the unscanned mail is forwarded): the service calls are measured."""
    closed = {"SMTPE_CLAMD": "127.0.0.1:%d" % free_port(), "SMTPE_SPAMD": "127.0.0.1:%d" % free_port()}
    return dict(closed if scanners else {"SMTPE_CLAMD": "none", "SMTPE_SPAMD": "none"},
                SMTPE_DOMAINS="example.org", SMTPE_DNSBL="dnsbl.bench", SMTPE_URIBL="uribl.bench",
                SMTPE_UNSCANNED="forward", SMTPE_TRUST_LAN="no")   # 127.0.0.1 is checked too


BENCH_ZONES = {
    "bench.": "@ IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n@ IN NS ns.bench.\n"
              "ns IN A 127.0.0.1\nclient IN A 127.0.0.1\n",
    "0.0.127.in-addr.arpa.": "@ IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n"
                             "@ IN NS ns.bench.\n1 IN PTR client.bench.\n",
    # the policy's blocklists: 127.0.0.2 is listed (the DNSBL convention), 127.0.0.1 is not
    "dnsbl.bench.": "@ IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n@ IN NS ns.bench.\n"
                    "2.0.0.127 IN A 127.0.0.2\n",
    "uribl.bench.": "@ IN SOA ns.bench. hostmaster.bench. 1 3600 600 86400 60\n@ IN NS ns.bench.\n"
                    "listed.example IN A 127.0.0.2\n",
}


def start_dns_server(folder):
    """The DNS server fixture (tests/support/dnsserver.py, Debian nsd) answering the PTR of
    127.0.0.1 and its forward name; None when nsd or the fixture is not available."""
    try:
        from tests.support.dnsserver import DnsServer, nsd_binary
    except ImportError:
        return None
    if nsd_binary() is None:
        return None
    try:
        return DnsServer(folder, BENCH_ZONES).start()
    except Exception:  # no DNS server: the policy runs with failing lookups instead
        return None


def start_smtpe(folder, script, workers, sink_port, dns=None, profile=None, label="", wrapper=(),
                start_timeout=60):
    """smtpe with the trivial or the policy script, forwarding to the sink ("accept": the
    trivial script, no smart host, every message accepted at the dot and dropped); its log
    and spool in a folder of its own. `wrapper`: a command that runs it (valgrind)."""
    options = {}
    env = None
    if dns is not None:
        options["dns-servers"] = dns
    path = TRIVIAL_SCRIPT
    smart_host = "127.0.0.1:%d" % sink_port
    if script == "accept":
        smart_host = None
        options["smtp-default-at-dot"] = "250"
    if script in ("policy", "policy-scan"):
        path, env = POLICY_SCRIPT, policy_environment(scanners=script == "policy-scan")
    name = "smtpe-%s-w%s%s%s" % (script, workers, "-" + label if label else "", "-profile" if profile else "")
    folder = os.path.join(folder, name)
    os.makedirs(folder, exist_ok=True)
    return peers.Smtpe(folder, path, workers, smart_host=smart_host, options=options,
                       env=env, profile=profile, wrapper=wrapper).start(timeout=start_timeout)


def ratio(value, reference):
    if not value or not reference:
        return None
    return value / reference
