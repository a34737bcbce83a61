"""A drill's report, written under the reports directory: report.json (every measure and the timeline), report.md
(the summary) and timeline.png (writes acknowledged per second per gateway DC, with the fault and heal marked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def fmt(value: float | None, unit: str = " s") -> str:
    return "never" if value is None else f"{value:.2f}{unit}"


def lost(cell: dict[str, Any]) -> str:
    """A cell's lost writes; unknown (a member not checked, nothing to look up) is never shown as 0."""
    return "not checked" if cell["rpo_writes"] is None else str(cell["rpo_writes"])


def flag(value: bool | None, unknown: str) -> str:
    """yes / no, or what an unknown value means (divergence not checked, split-brain not measured)."""
    return unknown if value is None else ("yes" if value else "no")


def lost_total(rpo: dict[str, Any]) -> str:
    if rpo["lost"] is None:
        return f"not checked in {', '.join(rpo['not_checked'])}"
    return str(rpo["lost"])


def write(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown(report))
    plot(report, out_dir / "timeline.png")
    return out_dir


def markdown(report: dict[str, Any]) -> str:
    verdict = "met" if report["targets_met"] else "MISSED"
    lines = [
        f"# Drill {report['drill']} on {report['target']} (stack {report['stack']})",
        "",
        f"Started {report['started']}, injector `{report['injector']}`, fault held {report['hold_s']:g} s. "
        f"Targets: **{verdict}**. Acknowledged writes: {report['rpo']['acked']}, lost: {lost_total(report['rpo'])}.",
        "",
        "| cell | writer inside | RTO | longest pause | errors | acked in fault | writers | lost | diverged"
        " | split-brain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["cells"]:
        lines.append(
            f"| {c['cell']} | {'yes' if c['led_from_inside'] else 'no'} | {fmt(c['rto_s'])} | {fmt(c['max_pause_s'])} "
            f"| {c['errors']} | {c['acked']} | {', '.join(c['writers'])} | {lost(c)} "
            f"| {flag(c['diverged'], 'not checked')} | {flag(c['split_brain'], 'not measured')} |"
        )
    lines += [
        "",
        "| gateway DC | requests | errors | acked | acked after the cut was complete |",
        "|---|---|---|---|---|",
    ]
    for dc, row in report["errors_per_dc"].items():
        lines.append(f"| {dc} | {row['requests']} | {row['errors']} | {row['acked']} | {row['acked_sent_during']} |")
    lines += ["", "| cell | target | value | outcome |", "|---|---|---|---|"]
    for v in report["verdicts"]:
        outcome = v["outcome"] if v["outcome"] == "met" else f"**{v['outcome']}**"
        lines.append(f"| {v['cell']} | {v['target']} | {v['value']} | {outcome} |")
    if report["errors"]:
        lines += ["", "Errors during the run:", *(f"- {e}" for e in report["errors"])]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    timeline = report["timeline"]
    fig, ax = plt.subplots(figsize=(9, 4))
    for dc, counts in timeline["acks_per_second"].items():
        ax.step(range(len(counts)), counts, where="post", label=f"via {dc}")
    for name, color in (("fault", "red"), ("heal", "green")):
        if timeline.get(name) is not None:
            ax.axvline(timeline[name], color=color, linestyle="--", label=name)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("writes acknowledged per second")
    ax.set_title(f"{report['drill']} on {report['target']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
