"""+daemon in the single executable (build/).

A PyInstaller one-file program runs from a folder that its bootloader unpacks and deletes as
soon as its Python process exits. The usual fork-and-exit detach would therefore leave the
daemon without its extension modules and Lua prelude. Instead the foreground process starts
a second copy of the executable in a new session (with its own folder) and waits until that
copy listens or fails: the copy's stderr is a pipe to us until it says it is ready, so
start-up errors still reach the terminal and the exit status."""
import os
import subprocess
import sys

COPY_ENV = "SMTPE_DETACHED_COPY"
READY = b"\0smtpe ready\n"


def is_onefile():
    meipass = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or not meipass:
        return False
    home = os.path.dirname(os.path.abspath(sys.executable))
    return os.path.commonpath([os.path.abspath(meipass), home]) != home  # one-folder: inside home


def must_start_copy():
    return is_onefile() and COPY_ENV not in os.environ


def is_copy():
    return COPY_ENV in os.environ


def start_copy(argv):
    """Run the detached copy with our arguments; -> exit status for this process."""
    env = dict(os.environ, PYINSTALLER_RESET_ENVIRONMENT="1")  # a new instance, new folder
    env[COPY_ENV] = "1"
    if "LD_LIBRARY_PATH_ORIG" in env:  # our bootloader's value points into our folder
        env["LD_LIBRARY_PATH"] = env.pop("LD_LIBRARY_PATH_ORIG")
    else:
        env.pop("LD_LIBRARY_PATH", None)
    reader, writer = os.pipe()
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
        copy = subprocess.Popen([sys.executable] + list(argv), env=env, stdin=null_in,
                                stdout=null_out, stderr=writer, start_new_session=True)
    os.close(writer)
    output = b""
    with os.fdopen(reader, "rb") as pipe:
        # Until the marker, or EOF when the copy failed. (Its bootloader process keeps the
        # pipe as its stderr, so EOF never comes when all went well.)
        while not output.endswith(READY):
            chunk = pipe.read1(4096)
            if not chunk:
                break
            output += chunk
    ready = output.endswith(READY)
    sys.stderr.buffer.write(output[:-len(READY)] if ready else output)
    sys.stderr.flush()
    if ready:
        return 0
    return copy.wait() or 70  # EX_SOFTWARE: it closed its stderr without being ready


def copy_is_ready():
    """In the copy, once listening: tell the waiting foreground process, drop the pipe."""
    os.write(2, READY)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    sys.stdout = sys.stderr = open(os.devnull, "w")
