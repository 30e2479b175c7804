"""smtpe under cProfile, for the benchmark suite only: `python tests/perf/profile_smtpe.py
<smtpe arguments>` runs the daemon as `python -m smtpe` would. When SMTPE_PROFILE names a
file, every worker's event loop (Worker.serve) runs under cProfile and writes its
statistics to that file (suffixed .<pid> for workers other than the first process) when
the worker stops (TERM drains, then the loop ends).

    python tests/perf/run --profile b      # starts smtpe this way and prints the cost per message
"""
import cProfile
import os
import sys

sys.path.insert(0, os.environ.get("SMTPE_PERF_SOURCE")
                or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe import server  # noqa: E402
from smtpe.cli import main  # noqa: E402

TARGET = os.environ.get("SMTPE_PROFILE")
FIRST_PID = os.getpid()


def profiled(serve):
    def serve_under_profile(self):
        profile = cProfile.Profile()
        profile.enable()
        try:
            return serve(self)
        finally:
            profile.disable()
            path = TARGET if os.getpid() == FIRST_PID else "%s.%d" % (TARGET, os.getpid())
            profile.dump_stats(path)
    return serve_under_profile


if TARGET:
    server.Worker.serve = profiled(server.Worker.serve)

if __name__ == "__main__":
    sys.argv[0] = "smtpe"
    sys.exit(main())
