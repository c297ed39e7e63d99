"""The soak's results: soak.json (everything), soak.md (the tables) and soak.png (answers
per second, the faults marked on the time axis)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.stats import summary_ms

if TYPE_CHECKING:
    from bench.soak.faults import Durations, FaultRecord, PlannedFault
    from bench.soak.run import LoadThread
    from bench.soak.supervisor import Supervisor


def _per_fault(
    records: list[FaultRecord], load: LoadThread, turns_by_tag: dict[str, Any], end: float
) -> list[dict[str, Any]]:
    rec = load.recorder
    rows = []
    for i, fault in enumerate(records):
        t0 = fault.started_at
        next_t0 = records[i + 1].started_at if i + 1 < len(records) else end
        # Answered again: the first answer of a turn sent after the fault began.
        first = min(
            (t for t, tag in rec.answers if t > t0 and turns_by_tag[tag].first_sent_at >= t0),
            default=None,
        )
        recovery_s = None if first is None else first - t0
        until = max(fault.ended_at, first or next_t0)
        puts = [p for p in rec.puts if t0 <= p[0] <= until]
        rows.append(
            {
                "kind": fault.kind,
                "target": fault.target,
                "at_s": round(t0 - load.started_at, 1),
                "outage_s": round(fault.ended_at - t0, 1),
                "detail": fault.detail,
                "answered_again_after_s": None if recovery_s is None else round(recovery_s, 2),
                "puts_503": sum(1 for p in puts if p[1] == 503),
                "puts_503_ms": summary_ms(p[3] for p in puts if p[1] == 503),
                "puts_failed_other": sum(1 for p in puts if p[1] not in (200, 503)),
                "resends": sum(1 for t, _ in rec.again if t0 <= t < next_t0),
                "turn_errors": sum(1 for t, _ in rec.errors if t0 <= t < next_t0),
            }
        )
    return rows


def results(
    *,
    args: argparse.Namespace,
    durations: Durations,
    plan: list[PlannedFault],
    records: list[FaultRecord],
    load: LoadThread,
    supervisor: Supervisor,
    state: dict[str, Any],
    health: dict[str, int | None],
    settle_s: float,
    load_ended_at: float,
) -> dict[str, Any]:
    rec = load.recorder
    turns = [t for c in load.clients for t in c.turns]
    turns_by_tag = {t.tag: t for t in turns}
    statuses = Counter(p[1] for p in rec.puts)
    answered_by_clients = sum(1 for t in turns if t.answered_at is not None)
    totals = {
        "sent": sum(1 for t in turns if t.accepted_at is not None),
        "put_attempts": len(rec.puts),
        "put_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "answered": state["answered"],
        "answered_seen_by_clients": answered_by_clients,
        "turn_errors": state["errors"],
        "acknowledged": state["answered"] - state["unacknowledged"],
        "unacknowledged": state["unacknowledged"],
        "lost": state["lost"],
        "duplicated": state["duplicated"] + rec.wrong_pk,
        "wrong_text": sum(1 for t in turns if t.text_ok is False),
        "copies_received_again": len(rec.again),
        "disconnects": Counter(why for _, why in rec.disconnects),
        "reconnect_s": summary_ms(took for _, took in rec.reconnects),
        "restarts_by_supervisor": Counter(r.name for r in supervisor.restarts),
        "client_problems": rec.problems[:20],
    }
    kinds_run = Counter(r.kind for r in records)
    verdict = {
        "lost_zero": state["lost"] == 0,
        "duplicated_zero": totals["duplicated"] == 0,
        "all_acknowledged": state["unacknowledged"] == 0,
        "no_turn_left_leased": state["unanswered_still_leased"] == 0,
        "no_idle_in_transaction": state["idle_in_transaction"] == 0,
        "health_200": all(code == 200 for code in health.values()),
        "no_500": statuses.get(500, 0) == 0,
    }
    verdict["passed"] = all(verdict.values())
    end = load_ended_at
    return {
        "config": {
            "seed": args.seed,
            "sessions": args.sessions,
            "minutes": args.minutes,
            "flaky_share": args.flaky_share,
            "kinds": list(args.kinds),
            "repeats": args.repeats,
            "durations": asdict(durations),
            "quick": args.quick,
        },
        "schedule": [asdict(f) for f in plan],
        "faults": _per_fault(records, load, turns_by_tag, end),
        "kinds_run": dict(kinds_run),
        "totals": totals,
        "database": state,
        "health": health,
        "settle_s": round(settle_s, 1),
        "verdict": verdict,
        "timeline": {
            "load_started_at": load.started_at,
            "load_ended_at": load_ended_at,
            "answers": [round(t - load.started_at, 3) for t, _ in rec.answers],
            "faults": [
                {
                    "kind": r.kind,
                    "start_s": round(r.started_at - load.started_at, 2),
                    "end_s": round(r.ended_at - load.started_at, 2),
                }
                for r in records
            ],
        },
    }


def markdown(results: dict[str, Any]) -> str:
    cfg, totals, verdict = results["config"], results["totals"], results["verdict"]
    lines = [
        "# Soak under faults",
        "",
        f'Seed **{cfg["seed"]}** (`make soak SOAK_ARGS="--seed {cfg["seed"]}"` replays the'
        f" schedule); {cfg['sessions']} sessions for {cfg['minutes']:g} min,"
        f" {round(100 * cfg['flaky_share'])}% of them leaving and rejoining at random; each"
        f" fault kind {cfg['repeats']}x. Outages: {json.dumps(cfg['durations'])}."
        f" Settled {results['settle_s']:g} s after the load stopped.",
        "",
        "![answers per second, faults marked](soak.png)",
        "",
        "## Overall",
        "",
        "| messages sent (200) | answered | turn errors (stored) | acknowledged | lost |"
        " duplicated | wrong text | copies received again |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {totals['sent']} | {totals['answered']} | {totals['turn_errors']}"
        f" | {totals['acknowledged']} | **{totals['lost']}** | **{totals['duplicated']}**"
        f" | {totals['wrong_text']} | {totals['copies_received_again']} |",
        "",
        f"PUT /user_message attempts: {totals['put_attempts']}, by status"
        f" {json.dumps(totals['put_statuses'])} (-1: no answer, the node was gone)."
        f" Restarts by the supervisor: {json.dumps(totals['restarts_by_supervisor'])}."
        f" Client disconnects: {json.dumps(totals['disconnects'])}; reconnections took"
        f" {totals['reconnect_s']['p50']} ms p50, {totals['reconnect_s']['max']} ms max.",
        "",
        "| check | result |",
        "|---|---|",
    ]
    for name, ok in verdict.items():
        if name != "passed":
            lines.append(f"| {name.replace('_', ' ')} | {'yes' if ok else '**NO**'} |")
    db = results["database"]
    lines += [
        f"| (counts) | lost {db['lost']}, unacknowledged {db['unacknowledged']}, leased"
        f" {db['unanswered_still_leased']}, idle in transaction {db['idle_in_transaction']},"
        f" health {json.dumps(results['health'])} |",
        "",
        "## Per fault",
        "",
        "Answered again: from the fault's start to the first answer of a turn sent after"
        " it began. 503s and other failed PUTs: from the start until then (or the end of the"
        " outage, whichever is later). Resends and turn errors: until the next fault.",
        "",
        "| at s | fault | outage s | answered again after s | PUTs 503 | 503 answered in ms"
        " (p50 / max) | PUTs failed otherwise | resends | turn errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["faults"]:
        name = row["kind"] + (f" ({row['target']})" if row["target"] else "")
        ms = row["puts_503_ms"]
        in_ms = f"{ms['p50']:.0f} / {ms['max']:.0f}" if ms["n"] else "-"
        again = row["answered_again_after_s"]
        lines.append(
            f"| {row['at_s']} | {name} | {row['outage_s']} | {again if again is not None else '-'}"
            f" | {row['puts_503']} | {in_ms} | {row['puts_failed_other']} | {row['resends']}"
            f" | {row['turn_errors']} |"
        )
    lines += ["", f"Verdict: **{'passed' if verdict['passed'] else 'FAILED'}**."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = results["timeline"]
    answers = timeline["answers"]
    length = int(timeline["load_ended_at"] - timeline["load_started_at"]) + 1
    per_second = [0] * max(1, length)
    for t in answers:
        if 0 <= t < length:
            per_second[int(t)] += 1
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot(range(len(per_second)), per_second, lw=0.8, color="tab:blue", label="answers/s")
    colors = plt.get_cmap("tab10")
    kinds = sorted({f["kind"] for f in timeline["faults"]})
    for fault in timeline["faults"]:
        color = colors(kinds.index(fault["kind"]) % 10)
        ax.axvspan(
            fault["start_s"], max(fault["end_s"], fault["start_s"] + 0.5), color=color, alpha=0.3
        )
        ax.text(
            fault["start_s"],
            ax.get_ylim()[1] * 0.97,
            fault["kind"],
            rotation=90,
            va="top",
            fontsize=7,
            color=color,
        )
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("answers per second")
    cfg = results["config"]
    ax.set_title(f"Soak: {cfg['sessions']} sessions, seed {cfg['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    (out / "soak.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "soak.md").write_text(markdown(results))
    plot(results, out / "soak.png")
