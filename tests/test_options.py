"""The option table and the original's option syntax."""
import subprocess
import sys

import pytest

from smtpe.options import BY_NAME, OPTIONS, OptionError, Options, help_text, parse_args, strtol

ORIGINAL_DEFAULTS = {
    "daemon": "+", "file": "/etc/smtpe/smtpe.cf", "script": "/etc/smtpe/smtpe.lua", "test": "-",
    "events-wait": "", "dns-ignore-tcp": "-", "dns-max-timeout": "45", "dns-round-robin": "-",
    "rate-global": "100", "rate-client": "0", "rfc2920-pipelining-reject": "-",
    "rfc2821-angle-brackets": "-", "rfc2821-local-length": "-", "rfc2821-domain-length": "-",
    "rfc2821-literal-plus": "-", "smtp-accept-timeout": "60", "smtp-command-timeout": "300",
    "smtp-data-timeout": "180", "smtp-default-at-dot": "451", "smtp-dot-timeout": "600",
    "smtp-error-url": "", "smtp-max-size": "0", "smtp-reply-timeout": "300",
    "smtp-server-port": "25", "smtp-server-queue": "20", "smtp-smart-host": "",
    "smtp-xclient": "+", "spool-dir": "/tmp", "verbose": "+warn +info",
}


def test_every_original_option_with_its_default():
    for name, default in ORIGINAL_DEFAULTS.items():
        assert BY_NAME[name].default == default, name
    # DECISIONS.md: PIPELINING is advertised by default.
    assert BY_NAME["rfc2920-pipelining-enable"].default == "+"
    for name in ("smtp-server-address", "dns-servers", "help", "info", "version", "check", "workers"):
        assert name in BY_NAME


def test_syntax_forms():
    options = parse_args(["-daemon", "SMTP-Server-Port=2525", "verbose+=+dns", "+rfc2821-angle-brackets",
                          "smtp-error-url=http://x/?", "file="])
    assert options.get("daemon") == "-" and not options.flag("daemon")
    assert options.int("smtp-server-port") == 2525
    assert options.get("verbose") == "+warn +info;+dns"
    assert options.flag("rfc2821-angle-brackets")
    assert options.get("smtp-error-url") == "http://x/?"


def test_parsing_stops_at_first_non_option_and_double_dash():
    assert parse_args(["smtp-server-port=1", "--", "smtp-server-port=2"]).int("smtp-server-port") == 1
    assert parse_args(["smtp-server-port=1", "positional", "smtp-server-port=2"]).int("smtp-server-port") == 1


def test_unknown_options_are_reported():
    with pytest.raises(OptionError):
        parse_args(["no-such-option=1"])
    with pytest.raises(OptionError):
        parse_args(["+nosuch"])


@pytest.mark.parametrize("text, value", [("0x1F", 31), ("010", 8), ("42abc", 42), ("-5", -5), ("+", 1),
                                         ("-", 0), ("", 0), ("junk", 0)])
def test_strtol(text, value):
    assert strtol(text) == value


def test_option_file_then_command_line(tmp_path):
    path = tmp_path / "smtpe.cf"
    path.write_text("# comment line\nsmtp-server-port=2600 -daemon\nsmtp-error-url='a b'\nspool-dir=/var/x\n")
    options = parse_args(["file=%s" % path, "spool-dir=/var/y"])
    assert options.int("smtp-server-port") == 2600
    assert options.get("smtp-error-url") == "a b"
    assert options.get("spool-dir") == "/var/y"  # the command line wins
    assert not options.flag("daemon")


def test_actions_and_test_mode():
    options = parse_args(["+help", "-version", "info=x", "+test"])
    assert options.actions == ["help", "version", "info"]
    assert options.get("daemon") == "-"


def test_help_lists_every_option_with_default_and_explanation():
    text = help_text(Options({"smtp-server-port": "2525"}))
    for option in OPTIONS:
        assert option.name in text
    assert "#smtp-server-port=25\nsmtp-server-port=2525" in text
    assert "# Seconds a client may be idle while sending DATA." in text


def test_cli_actions_exit_64():
    for action in ("-help", "-version", "-info"):
        result = subprocess.run([sys.executable, "-m", "smtpe", action, "file="], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 64, (action, result.stderr)
        assert result.stdout.strip()
    result = subprocess.run([sys.executable, "-m", "smtpe", "bogus-option=1"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 64 and "unknown option" in result.stderr
