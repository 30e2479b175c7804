"""Perf regression check: the figures of a run against the committed baselines
(tests/perf/baseline.json). Pure functions, so they are unit-tested without timing.

A throughput workload's figure is its ratio to smtp-sink measured in the same run (higher
is better); it regresses when it falls more than `tolerance` below its baseline. The idle
workload's figure is smtpe's KB of RSS per connection (lower is better; memory does not
depend on the machine's speed); it regresses when it grows more than `tolerance` above its
baseline (plus a small absolute allowance, readings are in whole kB)."""
import json

TOLERANCE = 0.15
MEMORY_SLACK_KB = 0.5
LOWER_IS_BETTER = {"d"}
# Instructions per message (tests/perf/instructions.py) are kept as a mode of their own; the
# count moves by well under 1% between runs, so 5% more is a real slowdown.
INSTRUCTIONS_MODE = "instructions"
INSTRUCTION_TOLERANCE = 0.05


def summary(results):
    """{workload: {config: figure}} from a run's results (configs: "w1", "default")."""
    figures = {}
    for name, entry in results.get("workloads", {}).items():
        for config, measured in entry.get("smtpe", {}).items():
            if name in LOWER_IS_BETTER:
                value = measured.get("kb_per_conn")
            else:
                value = entry.get("ratio", {}).get(config)
            if value is not None:
                figures.setdefault(name, {})[config] = round(value, 4)
    return figures


def instruction_summary(counted):
    """{workload: {"w1": instructions per message}} from tests/perf/instructions.py figures."""
    return {name: {"w1": figures["instructions_per_msg"]} for name, figures in counted.items()
            if figures.get("instructions_per_msg")}


def compare(current, baseline, tolerance=TOLERANCE, lower_is_better=False):
    """-> list of dicts (workload, config, current, baseline, limit, ok) for every figure
    present in both; a figure missing from the current run (its measurement failed)
    counts as a regression. Lower is better for memory (d) and for every figure when
    `lower_is_better` (instruction counts)."""
    rows = []
    for name, configs in sorted(baseline.items()):
        for config, base in sorted(configs.items()):
            value = current.get(name, {}).get(config)
            if lower_is_better or name in LOWER_IS_BETTER:
                limit = base * (1 + tolerance) + (0 if lower_is_better else MEMORY_SLACK_KB)
                ok = value is not None and value <= limit
            else:
                limit = base * (1 - tolerance)
                ok = value is not None and value >= limit
            rows.append({"workload": name, "config": config, "current": value, "baseline": base,
                         "limit": limit, "ok": ok})
    return rows


def failures(rows):
    return [row for row in rows if not row["ok"]]


def merge_best(first, second):
    """Per figure, the better of two runs (a re-measured workload keeps its best)."""
    return _merge(first, second, better=True)


def merge_worst(first, second):
    """Per figure, the worse of two runs: a baseline recorded over several runs is the
    slowest of them, so the check flags what is slower than the machine's normal noise."""
    return _merge(first, second, better=False)


def _merge(first, second, better):
    merged = {name: dict(configs) for name, configs in first.items()}
    for name, configs in second.items():
        for config, value in configs.items():
            old = merged.setdefault(name, {}).get(config)
            if old is None:
                merged[name][config] = value
            elif (name in LOWER_IS_BETTER) == better:
                merged[name][config] = min(old, value)
            else:
                merged[name][config] = max(old, value)
    return merged


def load_baseline(path, mode):
    """The baseline figures for `mode` ("full" or "quick"); {} when none are recorded."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data.get(mode, {})


def write_baseline(path, mode, figures, note=None):
    """Record `figures` as the baseline of `mode`, keeping the other mode's."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    data["about"] = ("Perf baselines of tests/perf/run --check: per workload and worker "
                     "configuration, the ratio to smtp-sink measured in the same run (d: smtpe KB "
                     "of RSS per idle connection). A figure more than %d%% worse fails the check. "
                     "'instructions': smtpe's instructions per message under callgrind "
                     "(--instructions); %d%% more fails."
                     % (round(TOLERANCE * 100), round(INSTRUCTION_TOLERANCE * 100)))
    data[mode] = figures
    if note:
        data.setdefault("notes", {})[mode] = note
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
