"""The one option table, and the original's option syntax.

`name=value` sets a string, `+name` sets "+" (numeric 1), `-name` sets "-" (numeric 0),
`name+=value` appends `;value`. Names are case-insensitive. Numeric values follow C strtol
with base 0 (`0x1F` hex, leading `0` octal). `file=path` names an option file (shell-like
tokens, `#` comment lines) read before the command line, which wins.
"""
import os
import re
import shlex
from dataclasses import dataclass

ACTION = "action"


@dataclass(frozen=True)
class Option:
    name: str
    default: str
    help: str
    kind: str = "value"   # "value", "flag" (+/-) or "action"


_O = Option
OPTIONS = (
    _O("daemon", "+", "Start as a background daemon logging to syslog (+daemon), or stay in the\n"
       "foreground logging to standard error (-daemon), as daemontools wants.", "flag"),
    _O("file", "/etc/smtpe/smtpe.cf", "Read option file before command line options."),
    _O("help", "", "Write the option summary to standard output and exit.", ACTION),
    _O("info", "", "Write the configuration information to standard output and exit.", ACTION),
    _O("version", "", "Write the version and copyright to standard output and exit.", ACTION),
    _O("check", "", "Load the options and the script, run hook.init, report problems and exit\n"
       "0 when all is well, 1 otherwise (use before a reload).", ACTION),
    _O("script", "/etc/smtpe/smtpe.lua", "The Lua script that defines the hooks."),
    _O("test", "-", "Interactive test mode: one session on standard input and output.", "flag"),
    _O("events-wait", "", "Accepted for compatibility; smtpe always uses the best selector."),
    _O("dns-servers", "", "DNS servers to ask, as a list of IP or IP:port ([IPv6]:port)\n"
       "separated by semicolons, commas or spaces; empty means /etc/resolv.conf."),
    _O("dns-ignore-tcp", "-", "Ignore the truncation bit (no TCP retry of truncated answers).", "flag"),
    _O("dns-max-timeout", "45", "Seconds; the longest any DNS query may take before it is\n"
       "reported with rcode TIMEOUT."),
    _O("dns-round-robin", "-", "Ask one DNS server at a time, rotating on retransmission,\n"
       "instead of all servers at once.", "flag"),
    _O("rate-global", "100", "Connections per second for the whole server before every further\n"
       "connection in that second waits one second. 0 disables."),
    _O("rate-client", "0", "Connections per 60 seconds allowed from one client IP; more get\n"
       "421 and are closed. 0 disables."),
    _O("rfc2920-pipelining-enable", "+", "Advertise PIPELINING in the EHLO reply.", "flag"),
    _O("rfc2920-pipelining-reject", "-", "Reply 550 to every command of a client detected pipelining\n"
       "when it did not negotiate PIPELINING.", "flag"),
    _O("rfc2821-angle-brackets", "-", "Require angle brackets around MAIL and RCPT addresses.", "flag"),
    _O("rfc2821-local-length", "-", "Reject local parts longer than 64 octets.", "flag"),
    _O("rfc2821-domain-length", "-", "Reject domains longer than 255 octets.", "flag"),
    _O("rfc2821-literal-plus", "-", "Treat plus as a literal in local parts (no sub-addresses).", "flag"),
    _O("smtp-accept-timeout", "60", "Seconds to wait for a connection to a forward or smart host."),
    _O("smtp-command-timeout", "300", "Seconds a client may be idle between commands; also the\n"
       "timeout for each reply of a forward host."),
    _O("smtp-data-timeout", "180", "Seconds a client may be idle while sending DATA."),
    _O("smtp-default-at-dot", "451", "The end-of-data reply when neither a hook nor forwarding gave\n"
       "one: 250 accepts, 550 rejects, anything else tempfails."),
    _O("smtp-dot-timeout", "600", "Seconds to wait for a forward host's reply to the final dot."),
    _O("smtp-drain-timeout", "60", "Seconds open sessions get to finish after TERM before they\n"
       "are told 421 and closed."),
    _O("smtp-error-url", "", "Text inserted before the E000 code of error replies."),
    _O("smtp-greeting-pause", "0", "Milliseconds to wait before the banner; a client that talks\n"
       "first is marked as pipelining (early talker). 0 disables."),
    _O("smtp-max-size", "0", "Maximum message size in bytes, advertised with SIZE, checked at\n"
       "MAIL SIZE= and while receiving DATA. 0 disables."),
    _O("smtp-reply-timeout", "300", "Seconds; default timeout of client.write."),
    _O("smtp-server-address", "", "Address to listen on; empty listens on every IPv4 and IPv6\n"
       "address."),
    _O("smtp-server-port", "25", "SMTP port to listen on."),
    _O("smtp-server-queue", "20", "Listen queue length (backlog)."),
    _O("smtp-smart-host", "", "Forward hosts for accepted mail: host, host:port, [IPv6]:port,\n"
       "separated by semicolons, commas or spaces; tried in order."),
    _O("smtp-xclient", "+", "Honour XCLIENT from loopback clients (or when hook.xclient\n"
       "allows it) and advertise it.", "flag"),
    _O("spool-dir", "/tmp", "Directory for spool files; empty disables spooling, header edits\n"
       "and smart-host forwarding."),
    _O("spool-memory", "256", "Kilobytes of a message kept in memory before its spool file is\n"
       "written; the file is also written as soon as a hook gets its path or reads\n"
       "client.msg_file. 0 writes every message to a file as it arrives."),
    _O("lua-hook-cpu", "10", "Seconds of CPU a hook may use before it is stopped (its client\n"
       "gets 451)."),
    _O("lua-hook-timeout", "900", "Seconds a hook may take in all, waits included, before it is\n"
       "stopped (its client gets 451). 0 disables."),
    _O("lua-max-memory", "512", "Megabytes the Lua state may use; an allocation past it fails\n"
       "the hook that made it (its client gets 451)."),
    _O("workers", "0", "Worker processes sharing the listening socket; 0 means one per CPU."),
    _O("verbose", "+warn +info", "Verbose logging words: warn info trace debug clamd dns http\n"
       "mime service smtp spamd uri (+word or -word)."),
)

BY_NAME = {option.name: option for option in OPTIONS}
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(\+?=)(.*)$", re.S)


class OptionError(Exception):
    pass


def strtol(text):
    """C strtol(text, NULL, 0) on an option string: leading integer, "+" is 1, "-" is 0."""
    text = text.strip()
    if text in ("+", ""):
        return 1 if text == "+" else 0
    if text == "-":
        return 0
    match = re.match(r"[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if not match:
        return 0
    number = match.group(0)
    sign = -1 if number.startswith("-") else 1
    digits = number.lstrip("+-")
    if digits[:2].lower() == "0x":
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


class Options:
    """Current option values (strings, as the original kept them)."""

    def __init__(self, values=None):
        self._values = {option.name: option.default for option in OPTIONS}
        self._typed = {}     # (kind, name) -> parsed value: sessions read options per command
        self.actions = []
        if values:
            for name, value in values.items():
                self.set(name, value)

    def get(self, name):
        return self._values[name.lower()]

    def int(self, name):
        key = ("int", name)
        value = self._typed.get(key)
        if value is None:
            value = self._typed[key] = strtol(self.get(name))
        return value

    def float(self, name):
        key = ("float", name)
        value = self._typed.get(key)
        if value is None:
            try:
                value = float(self.get(name))
            except ValueError:
                value = float(self.int(name))
            self._typed[key] = value
        return value

    def flag(self, name):
        return self.int(name) != 0

    def known(self, name):
        return name.lower() in self._values

    def set(self, name, value):
        name = name.lower()
        if name not in BY_NAME:
            raise OptionError("unknown option %r" % name)
        self._values[name] = value
        self._typed.clear()

    def apply(self, token):
        """Apply one option token; returns False when it is not an option at all."""
        if token[:1] in "+-" and len(token) > 1 and (token[1].isalpha() or token[1] == "_"):
            name, value = token[1:], token[0]
        else:
            match = _ASSIGN.match(token)
            if not match:
                return False
            name, op, value = match.groups()
            if op == "+=":
                value = self.get(name) + ";" + value if self.known(name) else value
        name = name.lower()
        option = BY_NAME.get(name)
        if option is None:
            raise OptionError("unknown option %r" % name)
        if option.kind == ACTION:
            if name not in self.actions:
                self.actions.append(name)
            return True
        self._values[name] = value
        self._typed.clear()
        return True

    def items(self):
        return self._values.items()


def parse_args(argv, read_file=True):
    """Command line -> Options, with the option file read first when `file` is set."""
    first = Options()
    tokens = _option_tokens(argv, first)
    options = Options()
    path = first.get("file")
    if read_file and path and os.path.isfile(path):
        for token in read_option_file(path):
            if not options.apply(token):
                raise OptionError("%s: not an option: %r" % (path, token))
    for token in tokens:
        options.apply(token)
    if options.flag("test"):
        options.set("daemon", "-")
    return options


def _option_tokens(argv, options):
    tokens = []
    for token in argv:
        if token == "--" or not options.apply(token):
            break
        tokens.append(token)
    return tokens


def read_option_file(path):
    tokens = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.lstrip().startswith("#"):
                continue
            tokens.extend(shlex.split(line, comments=False, posix=True))
    return tokens


def help_text(options):
    """The option table in option-file form, as -help prints it."""
    out = ["# smtpe options, in option-file form (name=value, +flag, -flag).", ""]
    for option in OPTIONS:
        out.extend("# " + line for line in option.help.splitlines())
        out.append("#")
        current = options.get(option.name) if option.kind != ACTION else ""
        if option.kind == ACTION:
            out.append("#-%s or +%s" % (option.name, option.name))
        elif option.kind == "flag":
            if current != option.default:
                out.append("#%s%s" % (option.default, option.name))
            out.append("%s%s" % (current if current in "+-" and current else "+", option.name))
        else:
            if current != option.default:
                out.append("#%s=%s" % (option.name, option.default))
            out.append("%s=%s" % (option.name, _quote(current)))
        out.append("")
    return "\n".join(out)


def _quote(value):
    return '"%s"' % value if (not value or any(c.isspace() for c in value)) else value
