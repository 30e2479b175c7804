"""Command line: options -> action (run, -help, -version, -info, -check)."""
import platform
import sys

from . import COPYRIGHT, VERSION
from .log import Log
from .options import OptionError, help_text, parse_args

EX_OK, EX_FAIL, EX_USAGE, EX_SOFTWARE, EX_OSERR = 0, 1, 64, 70, 71


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(argv)
    except (OptionError, OSError, ValueError) as exc:
        print("smtpe: %s (try -help)" % exc, file=sys.stderr)
        return EX_USAGE
    if "help" in options.actions:
        print(help_text(options))
        return EX_USAGE
    if "version" in options.actions:
        print(version_text())
        return EX_USAGE
    if "info" in options.actions:
        print(info_text())
        return EX_USAGE
    if "check" in options.actions:
        return check(options)
    return run(options)


def version_text():
    import lupa
    import pycares
    return "\n".join([
        "smtpe %s %s" % (VERSION, COPYRIGHT),
        "Lua 5.1 via lupa %s, pycares %s (c-ares %s), Python %s" % (
            lupa.__version__, pycares.__version__, getattr(pycares, "ARES_VERSION", "?"),
            platform.python_version()),
    ])


def info_text():
    import lupa
    import pycares
    values = {
        "_NAME": "smtpe", "_VERSION": VERSION, "_COPYRIGHT": COPYRIGHT,
        "PYTHON_VERSION": platform.python_version(), "LUPA_VERSION": lupa.__version__,
        "LUA_VERSION": "5.1", "PYCARES_VERSION": pycares.__version__,
        "PLATFORM": platform.platform(), "FROZEN": str(bool(getattr(sys, "frozen", False))),
    }
    return "\n".join('%s="%s"' % item for item in values.items())


def make_log(options):
    return Log(to_syslog=options.flag("daemon"), verbose=options.get("verbose"))


def check(options):
    """Load the script and run hook.init without serving: 0 when all is well."""
    from .engine import Engine, ScriptError
    from ._speedups.loop import Loop
    log = Log(verbose=options.get("verbose"))
    try:
        engine = Engine(options, Loop(), log)
        engine.run_init()
    except ScriptError as exc:
        print("smtpe: %s" % exc, file=sys.stderr)
        return EX_FAIL
    print("smtpe: %s OK" % options.get("script"))
    return EX_OK


def run(options):
    from .engine import ScriptError
    from .supervisor import serve
    log = make_log(options)
    try:
        return serve(options, log)
    except ScriptError as exc:
        log.error("cannot start: %s" % exc)
        if options.flag("daemon"):
            print("smtpe: cannot start: %s" % exc, file=sys.stderr)
        return EX_SOFTWARE
    except OSError as exc:
        log.error("cannot start: %s" % exc)
        return EX_SOFTWARE
