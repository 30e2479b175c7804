"""Instructions per message: smtpe (workers=1) runs under valgrind's callgrind while a
workload's load passes through it; the counters are zeroed after a warm-up and dumped after
the measured messages, so the figure is the user-space instructions (Python, Lua, the
Cython speedups, libc) the daemon executed per message, from accept to forward.

Unlike msg/s and CPU time this does not depend on what else the machine is doing: the same
code measures the same count to a fraction of a percent, run after run. It is the figure
to compare two versions by (a change of 2% shows), and the one the regression check
holds tightest. System-call time is not in it (the kernel's part, about a third of the
CPU time per message on loopback, is the same for every version: one send per reply).

    tests/perf/run --instructions [--only b,a]
"""
import glob
import os
import shutil
import subprocess
from dataclasses import replace

from tests.perf import workloads

WARM_UP = 400          # messages before the counters are zeroed (pools, caches, memo filled)
MESSAGES = {"a": 1000, "b": 2000, "b-pipe": 2000, "b-accept": 2000, "c": 300, "policy": 1000, "policy-scan": 1000}
START_TIMEOUT = 300    # seconds: the daemon starts some 30 times slower under valgrind
LOAD_TIMEOUT = 900


def available():
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def measure(workload, folder, sink_port, dns=None):
    """-> {"instructions_per_msg", "messages"} or {"error"} for one throughput workload."""
    if workload.load == "idle":
        return {"error": "no messages in workload %s" % workload.name}
    messages = MESSAGES.get(workload.name, 1000)
    output = os.path.join(folder, "callgrind-%s.out" % workload.name)
    try:
        daemon = workloads.start_smtpe(folder, workload.script, 1, sink_port, dns=dns, label="callgrind",
                                       wrapper=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + output],
                                       start_timeout=START_TIMEOUT)
    except Exception as exc:  # (wait_for_port's error says what happened)
        return {"error": "smtpe under valgrind did not start: %s" % exc}
    try:
        warm = workloads.apply_load(replace(workload, messages=WARM_UP), daemon.port, LOAD_TIMEOUT)
        if warm.get("error"):
            return {"error": "warm-up: %s" % warm["error"]}
        _control(daemon, "--zero")
        result = workloads.apply_load(replace(workload, messages=messages), daemon.port, LOAD_TIMEOUT)
        if result.get("error"):
            return {"error": result["error"]}
        _control(daemon, "--dump")
        total = _dumped_total(output)
    finally:
        daemon.stop()
    if total is None:
        return {"error": "callgrind wrote no dump"}
    return {"instructions_per_msg": round(total / result["messages"]), "messages": result["messages"]}


def _control(daemon, action):
    subprocess.run(["callgrind_control", action, str(daemon.process.pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120, check=True)


def _dumped_total(output):
    """The instruction total of the dump made on request (output.1; output itself is the
    dump at exit, which counts the shutdown too)."""
    for path in sorted(glob.glob(output + ".*")):
        with open(path) as handle:
            for line in handle:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    return None
