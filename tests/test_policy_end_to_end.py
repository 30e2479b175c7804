"""Issue 4 at the level of the real daemon (`python -m smtpe -daemon`, or $SMTPE_BIN):

1. lua/examples/policy.lua end to end against real peers, all on 127.0.0.1 high ports and
   stopped by PID: nsd (PTR and forward records for FCrDNS, an IP blocklist, a URI
   blocklist), clamd (EICAR signature), spamd (GTUBE scores 1000) and the recording smart
   host. Clients are smtplib; XCLIENT ADDR= makes the local client speak for the addresses
   the zones know (the daemon reruns hook.accept for them).
2. 200 clients whose hook.mail waits on DNS in one worker, while a 201st client goes
   through a whole transaction: the DNS answers are held by the fake DNS until the test
   releases them, so responsiveness is shown by order of events, not by timing.
"""
import datetime
import email.utils
import os
import re
import resource
import selectors
import smtplib
import socket

import pytest

from tests.support.clamd import EICAR
from tests.support.daemon import ROOT, Daemon
from tests.support.dnsserver import SOA, DnsServer, require_nsd
from tests.support.fakedns import SLOW_MARK, FakeDns
from tests.support.net import wait_until
from tests.support.smtpsink import RecordingSink
from tests.support.spamd import GTUBE

pytestmark = pytest.mark.timeout(240)

POLICY_SCRIPT = os.path.join(ROOT, "lua", "examples", "policy.lua")

# 192.0.2.10 passes forward-confirmed reverse DNS, 192.0.2.20's PTR name points elsewhere,
# 192.0.2.30 has no PTR, 192.0.2.66 is on the IP blocklist; evil-site.com is on the URI list.
POLICY_ZONES = {
    "2.0.192.in-addr.arpa.": SOA + "\n".join([
        "10 IN PTR mail.client.test.",
        "20 IN PTR forged.client.test.",
        "66 IN PTR spammer.client.test.",
        "",
    ]),
    "0.0.127.in-addr.arpa.": SOA + "1 IN PTR localhost.client.test.\n",
    "client.test.": SOA + "\n".join([
        "mail IN A 192.0.2.10",
        "forged IN A 192.0.2.99",
        "spammer IN A 192.0.2.66",
        "localhost IN A 127.0.0.1",
        "",
    ]),
    "dnsbl.test.": SOA + "66.2.0.192 IN A 127.0.0.2\n66.2.0.192 IN TXT \"listed\"\n",
    "uribl.test.": SOA + "evil-site.com IN A 127.0.0.2\n",
}

# dated now: spamd's date rules (a date far in the past or future) must not score the ham
HEADERS = (b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: lunch\r\n"
           b"Message-ID: <ham.1@example.org>\r\nDate: "
           + email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc)).encode() + b"\r\n")
BODY = b"Hi Bob,\r\nlunch tomorrow at noon? The menu: http://www.example.com/menu\r\n\r\nAlice\r\n"
HAM = HEADERS + b"\r\n" + BODY
VIRUS = HEADERS + b"\r\n" + BODY + EICAR + b"\r\n"
SPAM = (HEADERS.replace(b"Subject: lunch", b"Subject: Test spam mail (GTUBE)") + b"\r\n"
        b"This is the GTUBE, the\r\n\tGeneric\r\n\tTest for\r\n\tUnsolicited\r\n\tBulk\r\n"
        b"\tEmail\r\n\r\n" + GTUBE + b"\r\n\r\n")
LISTED_LINK = HEADERS + b"\r\n" + BODY + b"Cheap: http://evil-site.com/buy?now\r\n"

SENDER = "alice@example.org"
RECIPIENTS = ["bob@example.org", "carol@example.org"]
RECEIVED_DATE = rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000"
SCORE = rb"(?P<score>-?\d+(\.\d+)?)"


# -- peers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    require_nsd()
    with DnsServer(tmp_path_factory.mktemp("policy-nsd"), POLICY_ZONES) as server:
        yield server


@pytest.fixture
def sink():
    with RecordingSink() as recording:
        yield recording


@pytest.fixture
def closed_port():
    """A port bound but not listening, held for the test: connections to it are refused
    (a scanner that is down) and nobody else can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def policy_daemon(tmp_path, monkeypatch, nsd, clamd, spamd, sink):
    """Starts smtpe running lua/examples/policy.lua, configured (through the environment the
    policy reads) for the test's peers; settings override SMTPE_* variables (None: unset,
    the policy's default)."""
    started = []

    def start(**settings):
        environment = {
            "SMTPE_DNSBL": "dnsbl.test", "SMTPE_URIBL": "uribl.test",
            "SMTPE_DOMAINS": "example.org",
            "SMTPE_CLAMD": "127.0.0.1:%d" % clamd.port, "SMTPE_SPAMD": "127.0.0.1:%d" % spamd.port,
            "SMTPE_SPAM_REJECT": None, "SMTPE_UNSCANNED": None, "SMTPE_TRUST_LAN": None,
        }
        environment.update(settings)
        for name, value in environment.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        folder = tmp_path / ("smtpe-%d" % len(started))
        folder.mkdir()
        daemon = Daemon(folder, "-- unused: the option script= names the example policy\n", {
            "script": POLICY_SCRIPT, "dns-servers": nsd.address, "dns-max-timeout": "10",
            "smtp-smart-host": sink.address})
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


# -- clients -----------------------------------------------------------------------------
class Outcome:
    def __init__(self, server_name, replies, final):
        self.server_name = server_name   # the first word of the banner: smtpe.host
        self.replies = replies           # (code, text) of XCLIENT, MAIL and each RCPT
        self.code, self.text = final     # the end-of-data reply

    @property
    def transaction_id(self):
        match = re.search(rb"message (\S+) ", self.text)
        return match.group(1).decode() if match else None


def send(port, message, xclient_address=None, sender=SENDER, recipients=RECIPIENTS):
    """One transaction through smtplib, step by step so every reply is seen."""
    smtp = smtplib.SMTP(local_hostname="client.test", timeout=60)
    try:
        code, banner = smtp.connect("127.0.0.1", port)
        assert code == 220, banner
        replies = []
        if xclient_address:
            replies.append(smtp.docmd("XCLIENT", "ADDR=" + xclient_address))
            assert replies[-1][0] == 220, replies
        smtp.ehlo("client.test")
        replies.append(smtp.mail(sender))
        assert replies[-1][0] == 250, replies
        for recipient in recipients:
            replies.append(smtp.rcpt(recipient))
            assert replies[-1][0] == 250, replies
        final = smtp.data(message)
        smtp.quit()
    finally:
        smtp.close()
    return Outcome(banner.split()[0].decode(), replies, final)


def forwarded_pattern(outcome, client_host, client_address, verdict, spamd=None, extra_headers=b"",
                      original_headers=HEADERS, body=BODY, uris=1):
    """The exact message the smart host must receive: the policy's Received header first,
    the client's headers untouched, X-smtpe-Verdict (and extra_headers) appended to the
    header block, the body byte for byte. Only the date and the spamd score (group "score",
    unless `spamd` gives the exact text) vary."""
    received = ("Received: from %s [%s]\r\n\tby %s (smtpe) id %s;\r\n\t"
                % (client_host, client_address, outcome.server_name, outcome.transaction_id)).encode()
    return re.compile(re.escape(received) + RECEIVED_DATE + rb"\r\n" + re.escape(original_headers)
                      + re.escape(b"X-smtpe-Verdict: " + verdict.encode() + b" spamd=")
                      + (SCORE if spamd is None else re.escape(spamd.encode()))
                      + re.escape(b" parts=1 uris=%d\r\n" % uris + extra_headers + b"\r\n" + body) + rb"\Z")


def assert_nothing_reached_the_smart_host(sink):
    assert sink.transactions == [] and sink.messages == []


# -- 1. the example policy end to end ----------------------------------------------------
@pytest.mark.parametrize("client_address, client_host, verdict", [
    (None, "localhost.client.test", "local"),                  # 127.0.0.1: no DNS checks
    ("192.0.2.10", "mail.client.test", "fcrdns=pass"),        # PTR and A agree
    ("192.0.2.20", "forged.client.test", "fcrdns=fail"),      # A of the PTR name differs
    ("192.0.2.30", "[192.0.2.30]", "fcrdns=none"),            # no PTR at all
])
def test_clean_message_is_forwarded_with_the_policy_headers(policy_daemon, sink, client_address,
                                                            client_host, verdict):
    smtpe = policy_daemon()
    outcome = send(smtpe.port, HAM, xclient_address=client_address)

    assert (outcome.code, outcome.text) == (250, b"2.0.0 E000 message %s accepted"
                                            % outcome.transaction_id.encode())
    assert len(sink.messages) == 1
    forwarded = sink.messages[0]
    assert forwarded.sender == SENDER.encode()
    assert forwarded.recipients == [recipient.encode() for recipient in RECIPIENTS]
    match = forwarded_pattern(outcome, client_host, client_address or "127.0.0.1",
                              verdict + " clamd=OK").match(forwarded.data)
    assert match, forwarded.data.decode("latin-1")
    assert float(match.group("score")) < 5.0   # ham: spamd said no, so no X-Spam-Flag
    assert smtpe.spool_files() == []


def test_eicar_message_is_refused_at_the_dot_and_never_forwarded(policy_daemon, sink):
    smtpe = policy_daemon()
    outcome = send(smtpe.port, VIRUS)

    assert outcome.code == 550
    assert re.fullmatch(rb"5\.7\.1 message %s contains a virus: Smtpe-Test-Eicar(\.UNOFFICIAL)? FOUND"
                        % outcome.transaction_id.encode(), outcome.text), outcome.text
    assert b"/" not in outcome.text   # the spool path stays on this host
    assert_nothing_reached_the_smart_host(sink)
    assert smtpe.spool_files() == []


def test_gtube_message_is_refused_as_spam(policy_daemon, sink):
    smtpe = policy_daemon()                 # SMTPE_SPAM_REJECT defaults to 15; GTUBE is 1000
    outcome = send(smtpe.port, SPAM)

    assert outcome.code == 550
    match = re.fullmatch(rb"5\.7\.1 message %s refused as spam \(score %s\)"
                         % (outcome.transaction_id.encode(), SCORE), outcome.text)
    assert match and float(match.group("score")) >= 1000, outcome.text
    assert_nothing_reached_the_smart_host(sink)
    assert smtpe.spool_files() == []


def test_gtube_below_the_reject_score_is_forwarded_tagged_as_spam(policy_daemon, sink):
    smtpe = policy_daemon(SMTPE_SPAM_REJECT="5000")
    outcome = send(smtpe.port, SPAM)

    assert outcome.code == 250
    spam_headers, spam_body = SPAM.split(b"\r\n\r\n", 1)
    match = forwarded_pattern(outcome, "localhost.client.test", "127.0.0.1", "local clamd=OK",
                              extra_headers=b"X-Spam-Flag: YES\r\n", original_headers=spam_headers + b"\r\n",
                              body=spam_body, uris=0).match(sink.messages[0].data)
    assert match, sink.messages[0].data.decode("latin-1")
    assert float(match.group("score")) >= 1000
    assert smtpe.spool_files() == []


def test_blocklisted_client_is_refused_when_it_connects_before_any_mail(policy_daemon, sink):
    smtpe = policy_daemon()
    smtp = smtplib.SMTP(local_hostname="client.test", timeout=60)
    try:
        assert smtp.connect("127.0.0.1", smtpe.port)[0] == 220     # 127.0.0.1 itself is fine
        # the accept phase, run again for the address XCLIENT gives, answers and hangs up
        assert smtp.docmd("XCLIENT", "ADDR=192.0.2.66") == (554, b"5.7.1 192.0.2.66 is listed in dnsbl.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.ehlo("client.test")
            smtp.mail(SENDER)
    finally:
        smtp.close()
    # (the session closes before the turn's log lines are written: wait for them)
    wait_until(lambda: "dnsbl: 192.0.2.66 listed in dnsbl.test (127.0.0.2)" in smtpe.log,
               what="the dnsbl log line")
    assert sink.connections == 0
    assert smtpe.spool_files() == []


def test_recipient_outside_the_relayed_domains_is_refused_at_rcpt(policy_daemon, sink):
    smtpe = policy_daemon()
    with smtplib.SMTP("127.0.0.1", smtpe.port, local_hostname="client.test", timeout=60) as smtp:
        smtp.ehlo("client.test")
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt("someone@elsewhere.net") == (550, b"5.7.1 relaying to <someone@elsewhere.net> denied")
    assert_nothing_reached_the_smart_host(sink)


def test_message_linking_to_a_blocklisted_site_is_refused_at_the_dot(policy_daemon, sink):
    smtpe = policy_daemon()
    outcome = send(smtpe.port, LISTED_LINK, xclient_address="192.0.2.10")

    assert [code for code, _ in outcome.replies] == [220, 250, 250, 250]   # XCLIENT, MAIL, RCPTs
    assert (outcome.code, outcome.text) == (550, b"5.7.1 message %s links to a listed site: "
                                            b"evil-site.com (uribl.test)" % outcome.transaction_id.encode())
    assert_nothing_reached_the_smart_host(sink)
    assert smtpe.spool_files() == []


@pytest.mark.parametrize("dead, what", [("clamd", "viruses"), ("spamd", "spam")])
def test_a_dead_scanner_gives_451_and_forwards_nothing(policy_daemon, sink, closed_port, dead, what):
    smtpe = policy_daemon(**{"SMTPE_" + dead.upper(): "127.0.0.1:%d" % closed_port})
    outcome = send(smtpe.port, HAM)

    # 451: the client keeps the message and tries again later; nothing went anywhere
    assert (outcome.code, outcome.text) == (451, b"4.7.1 message %s not scanned for %s, try again later"
                                            % (outcome.transaction_id.encode(), what.encode()))
    assert_nothing_reached_the_smart_host(sink)
    assert smtpe.spool_files() == []
    assert "service " + dead in smtpe.log     # the failed scan is logged


@pytest.mark.parametrize("dead, clamd_verdict", [
    ("spamd", "OK"),
    ("clamd and spamd", "unavailable"),
])
def test_with_unscanned_forward_the_message_goes_on_whole_with_the_verdict_saying_so(
        policy_daemon, sink, closed_port, dead, clamd_verdict):
    dead_address = "127.0.0.1:%d" % closed_port
    settings = {"SMTPE_SPAMD": dead_address, "SMTPE_UNSCANNED": "forward"}
    if "clamd" in dead:
        settings["SMTPE_CLAMD"] = dead_address
    smtpe = policy_daemon(**settings)
    outcome = send(smtpe.port, HAM)

    assert outcome.code == 250
    assert forwarded_pattern(outcome, "localhost.client.test", "127.0.0.1", "local clamd=" + clamd_verdict,
                             spamd="unavailable").match(sink.messages[0].data), sink.messages[0].data
    assert smtpe.spool_files() == []


@pytest.mark.parametrize("off, verdict, spamd_text", [
    ("SMTPE_CLAMD", "local clamd=off", None),
    ("SMTPE_SPAMD", "local clamd=OK", "off"),
])
def test_a_scanner_set_to_none_is_not_asked_and_the_verdict_says_off(policy_daemon, sink, off, verdict,
                                                                      spamd_text):
    """Without SMTPE_UNSCANNED=forward: a scanner turned off is no scanner down (no 451)."""
    smtpe = policy_daemon(**{off: "none"})
    outcome = send(smtpe.port, HAM)

    assert outcome.code == 250
    assert forwarded_pattern(outcome, "localhost.client.test", "127.0.0.1", verdict,
                             spamd=spamd_text).match(sink.messages[0].data), sink.messages[0].data
    assert "service " not in smtpe.log      # nothing was tried, nothing failed
    assert smtpe.spool_files() == []


def test_with_trust_lan_off_a_loopback_client_is_checked_like_any_other(policy_daemon, sink):
    smtpe = policy_daemon(SMTPE_TRUST_LAN="no")
    outcome = send(smtpe.port, HAM)       # from 127.0.0.1: localhost.client.test, and back

    assert outcome.code == 250
    assert forwarded_pattern(outcome, "localhost.client.test", "127.0.0.1", "fcrdns=pass clamd=OK").match(
        sink.messages[0].data), sink.messages[0].data


# -- 2. 200 clients waiting on DNS in one worker ---------------------------------------------
WAITING_CLIENTS = 200

DNS_WAIT_SCRIPT = """
function hook.mail(sender, domain)
    dns.open()
    dns.query(dns.class.IN, dns.type.A, domain)
    local answers = dns.wait(1)               -- suspends this client's hook only
    local query = answers and answers["IN,A," .. domain .. "."]
    if query and query.answer and query.answer[1] then
        return "250 2.1.0 " .. domain .. " has address " .. query.answer[1].value
    end
    return "451 4.4.3 no address for " .. domain
end
"""

DNS_WAIT_ZONES = {
    "example.org.": SOA + "fast IN A 192.0.2.25\n" + "".join(
        "c%d.slow IN A 198.51.100.%d\n" % (number, number) for number in range(WAITING_CLIENTS)),
    "0.0.127.in-addr.arpa.": SOA + "1 IN PTR localhost.example.org.\n",
}


class WaitingClient:
    """A raw SMTP client brought into hook.mail: greeted, EHLO done, MAIL sent, unanswered."""

    def __init__(self, port, number):
        self.number = number
        self.domain = "c%d.slow.example.org" % number
        self.buffer = b""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        assert self.reply().startswith(b"220 ")
        self.sock.sendall(b"EHLO client%d.test\r\n" % number)
        assert self.reply().startswith(b"250 ")
        self.sock.sendall(b"MAIL FROM:<user%d@%s>\r\n" % (number, self.domain.encode()))

    def reply(self):
        """The next whole reply (its last line), blocking up to the socket timeout."""
        while True:
            while b"\r\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\r\n", 1)
                if line[3:4] != b"-":
                    return line
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("client %d: connection closed" % self.number)
            self.buffer += data

    def close(self):
        self.sock.close()


def replied_clients(clients):
    """The clients with anything to read (a reply, or a closed connection), checked now."""
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        return [key.data for key, _ in selector.select(timeout=0)]


@pytest.fixture
def enough_descriptors():
    """200 clients in the test and 200 sessions in the daemon (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * WAITING_CLIENTS + 200:
        pytest.skip("too few file descriptors for %d clients" % WAITING_CLIENTS)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(300)
def test_a_client_completes_a_transaction_while_200_hooks_wait_on_dns(tmp_path, sink, enough_descriptors,
                                                                      record_property):
    require_nsd()
    clients = []
    with DnsServer(tmp_path, DNS_WAIT_ZONES) as nsd, \
            FakeDns("slow", upstream=nsd.port, delay=0.0, hold=True) as held_dns:
        (tmp_path / "smtpe").mkdir()
        smtpe = Daemon(tmp_path / "smtpe", DNS_WAIT_SCRIPT, {
            "dns-servers": held_dns.address, "dns-max-timeout": "200", "workers": "1",
            "rate-global": "0", "rate-client": "100000",
            "smtp-smart-host": sink.address})
        with smtpe:
            try:
                for number in range(WAITING_CLIENTS):
                    clients.append(WaitingClient(smtpe.port, number))
                def slow_questions():
                    return {question for question in held_dns.held_questions() if SLOW_MARK in question}
                wait_until(lambda: len(slow_questions()) == WAITING_CLIENTS, 120,
                           "every hook.mail asked the DNS")
                waiting_hooks = len(slow_questions())
                record_property("simultaneously_waiting_hooks", waiting_hooks)
                print("hooks waiting on DNS at once: %d (queries received by the DNS: %d)"
                      % (waiting_hooks, held_dns.received))
                assert replied_clients(clients) == []       # all 200 suspended in hook.mail

                # the 201st client: a whole transaction, its own DNS lookup answered at once
                with smtplib.SMTP("127.0.0.1", smtpe.port, local_hostname="fast.test", timeout=60) as smtp:
                    smtp.ehlo("fast.test")
                    assert smtp.mail("someone@fast.example.org") == (
                        250, b"2.1.0 fast.example.org has address 192.0.2.25")
                    assert smtp.rcpt("bob@example.org")[0] == 250
                    assert smtp.data(b"Subject: past the waiting crowd\r\n\r\nbody\r\n")[0] == 250
                assert [(message.sender, message.data) for message in sink.messages] == [
                    (b"someone@fast.example.org", b"Subject: past the waiting crowd\r\n\r\nbody\r\n")]

                # ... and all the while the 200 were still waiting for their DNS answers
                assert len(slow_questions()) == WAITING_CLIENTS
                assert replied_clients(clients) == []

                held_dns.release()
                for client in clients:
                    assert client.reply() == b"250 2.1.0 %s has address 198.51.100.%d" % (
                        client.domain.encode(), client.number)
                for client in clients:
                    client.sock.sendall(b"QUIT\r\n")
                for client in clients:
                    assert client.reply().startswith(b"221 ")
            finally:
                for client in clients:
                    client.close()
        assert smtpe.spool_files() == []
    assert "Traceback" not in smtpe.log
