"""Real peers from Debian packages, for tests.

Tools that need no daemon of their own (Postfix's smtp-sink/smtp-source, nsd, ...) are taken
with `apt-get download` + `dpkg -x` into a cache folder, never installed as services. Tools
installed system-wide by .ci/run (swaks, clamd, spamd) are found on PATH.
"""
import glob
import os
import shutil
import subprocess

import pytest

CACHE = os.environ.get("SMTPE_TOOL_CACHE", os.path.expanduser("~/.cache/smtpe-test-tools"))


def extracted_package(package):
    """Folder where `package` is unpacked (downloading it once); None if that fails."""
    root = os.path.join(CACHE, package)
    if os.path.isdir(root) and os.listdir(root):
        return root
    os.makedirs(CACHE, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", package], cwd=CACHE, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        debs = sorted(glob.glob(os.path.join(CACHE, "%s_*.deb" % package)))
        os.makedirs(root, exist_ok=True)
        subprocess.run(["dpkg", "-x", debs[-1], root], check=True, timeout=120)
    except (OSError, subprocess.SubprocessError, IndexError):
        shutil.rmtree(root, ignore_errors=True)
        return None
    return root


def package_binary(package, relative_path):
    """Path of a binary inside a Debian package, or skip the test when unavailable."""
    root = extracted_package(package)
    path = os.path.join(root, relative_path) if root else None
    if not path or not os.access(path, os.X_OK):
        pytest.skip("%s from Debian package %s is not available" % (relative_path, package))
    return path


def system_binary(name):
    """A binary installed by .ci/run (apt-get install), or skip."""
    path = shutil.which(name) or next((p for p in ("/usr/sbin/" + name, "/usr/bin/" + name)
                                       if os.access(p, os.X_OK)), None)
    if not path:
        pytest.skip("%s is not installed (.ci/run installs it)" % name)
    return path


def smtp_sink_path():
    return package_binary("postfix", "usr/sbin/smtp-sink")


def smtp_source_path():
    return package_binary("postfix", "usr/sbin/smtp-source")


def postfix_env():
    """Environment for the unpacked Postfix tools: their shared libraries sit beside them."""
    root = extracted_package("postfix")
    libraries = os.path.join(root, "usr", "lib", "postfix") if root else ""
    return dict(os.environ, LD_LIBRARY_PATH=libraries + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""))
