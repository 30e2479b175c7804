"""Perf regression check.

The comparison rules (tests/perf/regression.py) are tested here like any code, without
timing. The measurement itself (`tests/perf/run --check --quick --instructions`: every
workload against smtp-sink, and workload b's instructions per message under callgrind,
compared with tests/perf/baseline.json) is marked `perf` and runs only with SMTPE_PERF=1, as
it takes a minute or two and needs a machine that is not busy."""
import os
import subprocess
import sys

import pytest

from tests.perf import regression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_ratio_more_than_15_percent_below_its_baseline_is_a_regression():
    baseline = {"b": {"w1": 0.40}}
    assert regression.compare({"b": {"w1": 0.35}}, baseline)[0]["ok"]
    assert not regression.compare({"b": {"w1": 0.33}}, baseline)[0]["ok"]


def test_memory_per_connection_regresses_when_it_grows():
    baseline = {"d": {"w1": 10.0}}
    assert regression.compare({"d": {"w1": 11.0}}, baseline)[0]["ok"]
    assert not regression.compare({"d": {"w1": 13.0}}, baseline)[0]["ok"]
    assert regression.compare({"d": {"w1": 2.0}}, baseline)[0]["ok"]


def test_a_missing_measurement_fails_and_unknown_workloads_are_ignored():
    rows = regression.compare({"a": {"w1": 0.5}}, {"b": {"w1": 0.4}})
    assert [(row["workload"], row["ok"]) for row in rows] == [("b", False)]


def test_summary_takes_ratios_and_kilobytes_per_connection():
    results = {"workloads": {
        "b": {"smtpe": {"w1": {"msg_per_s": 900.0}, "default": {"error": "x"}},
              "ratio": {"w1": 0.09, "default": None}},
        "d": {"smtpe": {"w1": {"kb_per_conn": 3.25}}, "ratio": {"w1": 0.01}},
    }}
    assert regression.summary(results) == {"b": {"w1": 0.09}, "d": {"w1": 3.25}}


def test_a_second_measurement_keeps_the_better_figure():
    merged = regression.merge_best({"b": {"w1": 0.3}, "d": {"w1": 5.0}},
                                   {"b": {"w1": 0.4}, "d": {"w1": 6.0}})
    assert merged == {"b": {"w1": 0.4}, "d": {"w1": 5.0}}


def test_baselines_of_each_mode_are_kept(tmp_path):
    path = str(tmp_path / "baseline.json")
    regression.write_baseline(path, "full", {"b": {"w1": 0.4}})
    regression.write_baseline(path, "quick", {"b": {"w1": 0.3}})
    assert regression.load_baseline(path, "full") == {"b": {"w1": 0.4}}
    assert regression.load_baseline(path, "quick") == {"b": {"w1": 0.3}}
    assert regression.load_baseline(str(tmp_path / "missing.json"), "full") == {}


@pytest.mark.perf
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("SMTPE_PERF") != "1", reason="set SMTPE_PERF=1 to run the perf check")
def test_no_workload_is_more_than_15_percent_below_its_baseline(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "tests", "perf", "run"), "--check", "--quick",
               "--instructions", "--json", str(tmp_path / "check.json")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=850)
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_baseline_over_several_runs_keeps_the_worst_figure():
    merged = regression.merge_worst({"b": {"w1": 0.3}, "d": {"w1": 5.0}},
                                    {"b": {"w1": 0.4}, "d": {"w1": 6.0}})
    assert merged == {"b": {"w1": 0.3}, "d": {"w1": 6.0}}


def test_instruction_counts_regress_when_they_grow_more_than_5_percent():
    baseline = {"b": {"w1": 600000}}
    counted = regression.instruction_summary({"b": {"instructions_per_msg": 620000, "messages": 2000},
                                              "a": {"error": "valgrind failed"}})
    assert counted == {"b": {"w1": 620000}}
    rows = regression.compare(counted, baseline, tolerance=regression.INSTRUCTION_TOLERANCE, lower_is_better=True)
    assert rows[0]["ok"]
    rows = regression.compare({"b": {"w1": 640000}}, baseline, tolerance=regression.INSTRUCTION_TOLERANCE,
                              lower_is_better=True)
    assert not rows[0]["ok"]
    assert regression.compare({}, baseline, lower_is_better=True)[0]["ok"] is False
