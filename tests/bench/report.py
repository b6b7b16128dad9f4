"""The report: per metric, each runtime's median, p10 and p90 and the ratio of its median
to runc's, as a Markdown table per benchmark and PNG charts (matplotlib, when installed).
"""
import os
import sys

from benchlib import REFERENCE, RUNTIME_ORDER, summarize

# Columns that are not runtimes of the suite: shown where a benchmark measured them.
# "runc+seccomp" (syscalls.py) follows runc.
EXTRA_COLUMNS = ("host", "runc+seccomp")
COLUMNS = ["host"] + [c for rt in RUNTIME_ORDER
                      for c in ([rt, "runc+seccomp"] if rt == "runc" else [rt])]


def add_summaries(results):
    """Adds "summary" (per metric, per runtime: n, median, p10, p90, ratio_to_runc) to
    every benchmark of results."""
    for bench in results["benchmarks"].values():
        bench["summary"] = {}
        for key, m in bench["metrics"].items():
            stats = {rt: summarize(v) for rt, v in m["samples"].items() if v}
            ref = stats.get(REFERENCE, {}).get("median")
            for st in stats.values():
                st["ratio_to_runc"] = st["median"] / ref if ref else None
            bench["summary"][key] = stats


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 100:
        return "{:,.0f}".format(v)
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def _columns(results, bench):
    """The runtime columns of a benchmark's table: host when it was measured, then every
    runtime in the suite's order, available or not (an unavailable one says so)."""
    measured = {rt for m in bench["metrics"].values() for rt in m["samples"]}
    cols = ["host"] if "host" in measured else []
    for rt in RUNTIME_ORDER:
        if rt in results["runtimes"]:
            cols.append(rt)
        if rt == "runc" and "runc+seccomp" in measured:
            cols.append("runc+seccomp")
    return cols


def _cell(results, bench, key, rt):
    info = results["runtimes"].get(rt, {})
    if rt not in EXTRA_COLUMNS and not info.get("available"):
        return "n/a"
    if rt in bench["errors"]:
        return "**failed**"
    st = bench["summary"].get(key, {}).get(rt)
    if not st:
        return "–"
    text = "%s [%s–%s]" % (fmt(st["median"]), fmt(st["p10"]), fmt(st["p90"]))
    if st["ratio_to_runc"] is not None:
        text += " ×%.2f" % st["ratio_to_runc"]
    return text


def markdown(results, charts_note):
    meta = results["meta"]
    mach = meta["machine"]
    lines = [
        "# runcell benchmarks",
        "",
        "- date: %s" % meta["date"],
        "- machine: %s, %d cores (%s), %s memory, kernel %s, %s cgroups" % (
            mach["os"], mach["cores"], mach["cpu"], mach["memory"], mach["kernel"],
            mach["cgroups"]),
        "- state roots: %s" % meta.get("state_fs", "?"),
        "- load average before / after: %s / %s" % (meta["loadavg_before"],
                                                     meta["loadavg_after"]),
        "- setting: `%s` (%.0f s); command: `%s`" % (meta["setting"], meta["duration_s"],
                                                   meta["command"]),
        "",
        "Each cell: **median [p10–p90] ×ratio**, the ratio being the runtime's median over "
        "runc's. Runtimes alternate run by run (each takes each place in the order in turn). "
        "`n/a`: the runtime is not available (see below); `failed`: it failed (error below "
        "the table).",
        "",
        "## Runtimes",
        "",
        "| runtime | what | version | mode in its state | status |",
        "|---|---|---|---|---|",
    ]
    for rt in RUNTIME_ORDER:
        info = results["runtimes"].get(rt)
        if info is None:
            continue
        status = "measured" if info.get("available") else info.get("reason", "absent")
        ann = info.get("state_annotations") or {}
        mode = ", ".join("%s=%s" % (k[len("run.runcell."):], v) for k, v in sorted(ann.items()))
        lines.append("| %s | %s | %s | %s | %s |" % (rt, info["description"],
                                                      info.get("version") or "–", mode or "–",
                                                      status))
    for bkey, bench in results["benchmarks"].items():
        cols = _columns(results, bench)
        lines += ["", "## %s" % bench["title"], ""]
        params = ", ".join("%s=%s" % kv for kv in bench["params"].items())
        lines += ["Parameters: %s." % params, ""]
        if not bench["metrics"]:
            lines.append("No metric measured.")
        else:
            lines.append("| metric | unit | better | " + " | ".join(cols) + " |")
            lines.append("|---|---|---|" + "---|" * len(cols))
            for key, m in bench["metrics"].items():
                lines.append("| %s | %s | %s | %s |" % (
                    m["title"], m["unit"], m["better"],
                    " | ".join(_cell(results, bench, key, rt) for rt in cols)))
        extra = ["- " + note for note in bench.get("notes", [])]
        extra += ["- **%s failed**: `%s`" % (rt, err.replace("`", "'"))
                  for rt, err in bench["errors"].items()]
        if extra:
            lines += [""] + extra
    lines += ["", "## Charts", "", charts_note, ""]
    return "\n".join(lines)


def charts(results, outdir):
    """One PNG per benchmark: a panel per metric, a bar per runtime (median) with its
    p10–p90 range. Returns (list of file names, note for the report)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ("Charts skipped: %s cannot import matplotlib (apt-get install "
                    "python3-matplotlib, and run the suite with /usr/bin/python3)." %
                    sys.executable)
    colors = {"host": "#888888", "runcell": "#1f77b4", "runcell-native": "#17becf",
              "runc": "#ff7f0e", "runc+seccomp": "#d62728", "runsc": "#2ca02c",
              "runcell-microvm": "#9467bd"}
    files = []
    for bkey, bench in results["benchmarks"].items():
        metrics = [(k, m) for k, m in bench["metrics"].items() if bench["summary"].get(k)]
        if not metrics:
            continue
        ncols = min(3, len(metrics))
        nrows = (len(metrics) + ncols - 1) // ncols
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows),
                                 squeeze=False)
        for ax in axes.flat[len(metrics):]:
            ax.set_visible(False)
        for ax, (key, m) in zip(axes.flat, metrics):
            stats = bench["summary"][key]
            names = [rt for rt in COLUMNS if rt in stats]
            med = [stats[rt]["median"] for rt in names]
            lo = [stats[rt]["median"] - stats[rt]["p10"] for rt in names]
            hi = [stats[rt]["p90"] - stats[rt]["median"] for rt in names]
            ax.bar(range(len(names)), med, yerr=[lo, hi], capsize=3,
                   color=[colors.get(n, "#444444") for n in names])
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
            positive = [v for v in med if v and v > 0]
            if positive and max(positive) / min(positive) > 50:
                ax.set_yscale("log")
            ax.set_title(m["title"], fontsize=9)
            ax.set_ylabel("%s (%s is better)" % (m["unit"], m["better"]), fontsize=8)
            for x, v in enumerate(med):  # above the p90 whisker
                ax.annotate(fmt(v), (x, v + hi[x]), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
        fig.suptitle("%s — median, p10–p90 (%s, %s)" % (
            bench["title"], results["meta"]["date"][:10], results["meta"]["setting"]),
            fontsize=11)
        fig.tight_layout()
        name = "%s.png" % bkey
        fig.savefig(os.path.join(outdir, name), dpi=110)
        plt.close(fig)
        files.append(name)
    note = "\n".join("![%s](%s)" % (f[:-4], f) for f in files) or "No chart: nothing measured."
    return files, note
