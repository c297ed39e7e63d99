"""The results of a run: bench.json, bench.md (the tables the README shows) and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.stats import percentile, ratio

KIND_LABELS = {"backend": "System1", "minimal": "minimal pipeline", "floor": "openai floor"}
KIND_COLORS = {"backend": "tab:blue", "minimal": "tab:orange", "floor": "tab:green"}
# The level the latency goals are stated at.
GOAL_LEVEL = 50


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if data is None:
            return None
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(share: float | None) -> str:
    return _fmt(100 * share if share is not None else None, 0)


def _calibration(calibration: dict[str, Any]) -> str:
    """The CPU calibration loop at the start and end: how fast the machine ran then."""
    start, end = calibration.get("start"), calibration.get("end")
    if not start:
        return ""
    text = f"CPU calibration (sum(range(10**6)), median of 10): {start['cpu_ms']} ms at the start"
    return text + (f", {end['cpu_ms']} ms at the end." if end else ".")


def _pair(summary: dict[str, Any] | None, a: str = "p50", b: str = "p99") -> str:
    if not summary or summary.get("n", 0) == 0:
        return "-"
    return f"{_fmt(summary[a])} / {_fmt(summary[b])}"


def _level(results: dict[str, Any], phase: str, sessions: int) -> dict[str, Any] | None:
    for row in results.get(phase, []):
        if row["sessions"] == sessions:
            return row
    return None


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the issue: target, measured figure, met or not (None: not measured)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, target: str, measured: str, met: bool | None) -> None:
        out.append({"goal": goal, "target": target, "measured": measured, "met": met})

    at50 = _level(results, "levels", GOAL_LEVEL)
    backend = _get(at50, "backend", "added_ttft_ms")
    minimal = _get(at50, "minimal", "added_ttft_ms")
    if backend and backend["n"]:
        add(
            f"added TTFT at {GOAL_LEVEL} sessions",
            "p50 ≤ 15 ms, p99 ≤ 40 ms",
            f"p50 {_fmt(backend['p50'])} ms, p99 {_fmt(backend['p99'])} ms",
            backend["p50"] <= 15 and backend["p99"] <= 40,
        )
        if minimal and minimal["n"]:
            r50, r99 = ratio(backend["p50"], minimal["p50"]), ratio(backend["p99"], minimal["p99"])
            add(
                "stretch: added TTFT within 1.3x the minimal pipeline",
                "≤ 1.3x (p50 and p99)",
                f"p50 {_fmt(r50, 2)}x, p99 {_fmt(r99, 2)}x",
                r50 is not None and r99 is not None and r50 <= 1.3 and r99 <= 1.3,
            )
    else:
        add(f"added TTFT at {GOAL_LEVEL} sessions", "p50 ≤ 15 ms, p99 ≤ 40 ms", "not run", None)
    put = _get(at50, "backend", "put_ms")
    add(
        f"PUT /user_message at {GOAL_LEVEL} sessions",
        "p50 ≤ 8 ms",
        f"p50 {_fmt(put['p50'])} ms" if put and put["n"] else "not run",
        (put["p50"] <= 8) if put and put["n"] else None,
    )
    for row in results.get("saturation", []):
        mine = _get(row, "backend", "tokens_per_s")
        floor = _get(row, "floor", "tokens_per_s")
        share = ratio(mine, floor)
        # The minimal pipeline's share, measured back to back, is what this machine allows
        # a backend with nothing on its path: it tells a slow machine from a slow backend.
        minimal_share = ratio(_get(row, "minimal", "tokens_per_s"), floor)
        add(
            f"tokens delivered/s at saturation, {row['sessions']} sessions",
            "≥ 60% of the openai floor",
            f"{_fmt(mine, 0)} vs {_fmt(floor, 0)} tokens/s = {_percent(share)}% "
            f"(minimal pipeline {_percent(minimal_share)}%)",
            share is not None and share >= 0.6,
        )
    at200 = _level(results, "levels", 200)
    lost = _get(at200, "backend", "lost")
    add(
        "200 concurrent streaming sessions",
        "0 lost messages",
        f"{lost} lost, {_get(at200, 'backend', 'duplicates')} duplicated, "
        f"{_get(at200, 'backend', 'turns_finished')} turns"
        if at200
        else "not run",
        (lost == 0) if at200 else None,
    )
    idle = results.get("idle_sockets")
    if idle:
        pss = idle["web_pss_mb"]["after_hold"]
        held = idle["web_memory_mb"]["after_hold"]
        add(
            f"web node memory with {idle['sockets']} idle sockets",
            "≤ 200 MB (1,000 sockets)",
            f"{_fmt(pss)} MB PSS of the node (worker RSS {_fmt(held['worker_rss'])} MB, "
            f"master RSS {_fmt(held['master_rss'])} MB; {idle['connected']} connected)",
            pss <= 200 and idle["connected"] == idle["sockets"]
            if idle["sockets"] >= 1000
            else None,
        )
    resend = results.get("resend")
    if resend:
        late = resend["lateness_ms"]["p99"]
        worker = _get(resend, "resources", "delivery", "peak_rss_mb")
        full = resend["messages"] >= 10_000
        add(
            f"resends of {resend['messages']} unacked messages",
            "late ≤ 1 s at p99 (10,000 messages)",
            f"p99 {_fmt(late, 0)} ms late ({resend['resends_observed']} resends)",
            (late is not None and late <= 1000 and resend["complete"]) if full else None,
        )
        add(
            f"delivery worker RSS, {resend['messages']} unacked messages",
            "≤ 300 MB (10,000 messages)",
            f"{_fmt(worker)} MB peak",
            (worker is not None and worker <= 300) if full else None,
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    config = results["config"]
    work = config["streaming_workload"]
    sat = config["saturation_workload"]
    calibration = _calibration(results.get("cpu_calibration", {}))
    lines = [
        "# System1 benchmark",
        "",
        f"Run {results.get('finished_at', '?')} on {m['cpu']} ({m['cores']} cores, "
        f"{m['memory_gb']} GB, {m['os']}, Python {m['python']}), everything on loopback; "
        f"load average {results['load_average'].get('start')} at the start, "
        f"{results['load_average'].get('end')} at the end; {results.get('run_s', '?')} s."
        + (f" {calibration}" if calibration else "")
        + (" **Quick run** (make test): figures are not meaningful." if config["quick"] else ""),
        "",
        f"Streaming workload: the scripted LLM answers {work['reply_words']} tokens, first after "
        f"{work['ttft_ms']} ms, then one every {work['token_interval_ms']} ms; each user sends "
        f"its next message {work['think_ms']} ms after its answer arrived, "
        f"for {work['duration_s']:g} s per level. Settings: "
        + ", ".join(f"{k}={v}" for k, v in config["settings"].items())
        + ". Times in ms, as p50 / p99 unless said otherwise.",
        "",
        "**Added TTFT** = PUT /user_message sent → first `mojo_token` at the client, minus the "
        "LLM's own TTFT. *Minimal* is bench/minimal_pipeline.py (POST → Celery → LLM → emit, "
        "no database, no auth); *floor* is the `openai` package reading the LLM directly.",
        "",
        "| sessions | added TTFT p50 / p95 / p99 | minimal | openai floor | x minimal (p50, p99) "
        "| PUT /user_message | last chunk → mojo_message | turns/s | tokens/s (x floor) "
        "| events/s | lost | dup |",
        "|---:|---|---|---|---|---|---|---:|---|---:|---:|---:|",
    ]
    for row in results.get("levels", []):
        b, mi, fl = row["backend"], row["minimal"], row["floor"]
        t = b["added_ttft_ms"]
        share = ratio(b["tokens_per_s"], fl["tokens_per_s"])
        lines.append(
            f"| {row['sessions']} | {_fmt(t['p50'])} / {_fmt(t['p95'])} / {_fmt(t['p99'])} "
            f"| {_pair(mi['added_ttft_ms'])} | {_pair(fl['added_ttft_ms'])} "
            f"| {_fmt(ratio(t['p50'], mi['added_ttft_ms']['p50']), 2)}, "
            f"{_fmt(ratio(t['p99'], mi['added_ttft_ms']['p99']), 2)} "
            f"| {_pair(b.get('put_ms'))} | {_pair(b['last_chunk_to_message_ms'])} "
            f"| {_fmt(b['turns_per_s'])} | {_fmt(b['tokens_per_s'], 0)} ({_fmt(share, 2)}) "
            f"| {_fmt(b['events_per_s'], 0)} | {b['lost']} | {b['duplicates']} |"
        )
    lines += [
        "",
        "Where System1's added TTFT goes (p50 / p99): request → LLM asked (PUT, queue, "
        "worker, database), and LLM's first chunk → client (openai, emit, Redis, web node); "
        "CPU in cores (CPU seconds per second) and peak RSS over the level:",
        "",
        "| sessions | request → LLM | LLM chunk → client | minimal: request → LLM "
        "| minimal: chunk → client | CPU ms per turn (minimal) | web CPU | turns worker CPU "
        "| postgres CPU | redis CPU | LLM CPU | client CPU | web RSS MB | turns RSS MB |",
        "|---:|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.get("levels", []):
        b, mi = row["backend"], row["minimal"]
        r = b["resources"]
        lines.append(
            f"| {row['sessions']} | {_pair(b['request_to_llm_ms'])} "
            f"| {_pair(b['llm_first_chunk_to_client_ms'])} | {_pair(mi['request_to_llm_ms'])} "
            f"| {_pair(mi['llm_first_chunk_to_client_ms'])} "
            f"| {_fmt(b.get('cpu_ms_per_turn'))} ({_fmt(mi.get('cpu_ms_per_turn'))}) "
            f"| {_fmt(_get(r, 'web', 'cpu_cores'), 2)} | {_fmt(_get(r, 'turns', 'cpu_cores'), 2)} "
            f"| {_fmt(_get(r, 'postgres', 'cpu_cores'), 2)} "
            f"| {_fmt(_get(r, 'redis', 'cpu_cores'), 2)} | {_fmt(_get(r, 'llm', 'cpu_cores'), 2)} "
            f"| {_fmt(b['client']['cpu_cores'], 2)} | {_fmt(_get(r, 'web', 'peak_rss_mb'))} "
            f"| {_fmt(_get(r, 'turns', 'peak_rss_mb'))} |"
        )
    if results.get("saturation"):
        lines += [
            "",
            f"Saturation workload: {sat['reply_words']} tokens per answer, no delay at the LLM "
            f"(TTFT 0, interval 0), {sat['duration_s']:g} s per level:",
            "",
            "| sessions | System1 tokens/s | minimal tokens/s | openai floor tokens/s "
            "| System1 / floor | System1 / minimal | System1 turns/s | turns worker CPU "
            "| web CPU | lost |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in results["saturation"]:
            b, mi, fl = row["backend"], row["minimal"], row["floor"]
            lines.append(
                f"| {row['sessions']} | {_fmt(b['tokens_per_s'], 0)} "
                f"| {_fmt(mi['tokens_per_s'], 0)} | {_fmt(fl['tokens_per_s'], 0)} "
                f"| {_fmt(ratio(b['tokens_per_s'], fl['tokens_per_s']), 2)} "
                f"| {_fmt(ratio(b['tokens_per_s'], mi['tokens_per_s']), 2)} "
                f"| {_fmt(b['turns_per_s'])} "
                f"| {_fmt(_get(b, 'resources', 'turns', 'cpu_cores'), 2)} "
                f"| {_fmt(_get(b, 'resources', 'web', 'cpu_cores'), 2)} | {b['lost']} |"
            )
    idle = results.get("idle_sockets")
    if idle:
        pss, mem = idle["web_pss_mb"], idle["web_memory_mb"]
        start = results.get("web_memory_at_start_mb") or {}
        lines += [
            "",
            f"Idle sockets: {idle['connected']} of {idle['sockets']} authenticated sockets "
            f"connected and joined in {idle['connect_s']} s. Web node memory (PSS of gunicorn "
            f"master + worker, shared pages counted once): {_fmt(start.get('pss_total'))} MB "
            f"fresh, {pss['before']} MB after the load levels, {pss['connected']} MB connected, "
            f"{pss['after_hold']} MB after {idle['hold_s']:g} s idle "
            f"({idle['web_kb_per_socket']} KB per socket); worker RSS "
            f"{mem['after_hold']['worker_rss']} MB, "
            f"master RSS {mem['after_hold']['master_rss']} MB.",
        ]
    resend = results.get("resend")
    if resend:
        late = resend["lateness_ms"]
        res = resend["resources"]
        lines += [
            "",
            f"Resend load: {resend['messages']} unacknowledged messages, resent every "
            f"{resend['resend_interval_s']:g} s, observed {resend['observed_s']} s: "
            f"{resend['resends_observed']} resends ({resend['resends_per_s']}/s), late by "
            f"p50 {_fmt(late['p50'], 0)} / p99 {_fmt(late['p99'], 0)} / max "
            f"{_fmt(late['max'], 0)} ms; delivery worker peak RSS "
            f"{_fmt(_get(res, 'delivery', 'peak_rss_mb'))} MB "
            f"(CPU {_fmt(_get(res, 'delivery', 'cpu_cores'), 2)} cores), web CPU "
            f"{_fmt(_get(res, 'web', 'cpu_cores'), 2)} cores; Redis used memory "
            f"{resend['redis_used_memory_mb']['before']} → "
            f"{resend['redis_used_memory_mb']['peak']} MB peak.",
        ]
    lines += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
    for goal in results.get("goals", []):
        met = {True: "yes", False: "**no**", None: "n/a"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {goal['target']} | {goal['measured']} | {met} |")
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], samples: dict[tuple[str, str, int], list[float]], out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    levels = [row["sessions"] for row in results.get("levels", [])]
    if levels:
        reference = GOAL_LEVEL if GOAL_LEVEL in levels else levels[-1]
        fig, (cdf, tail) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=80)
        for kind in ("floor", "minimal", "backend"):
            values = sorted(1000 * v for v in samples.get(("streaming", kind, reference), []))
            if values:
                ys = [100 * (i + 1) / len(values) for i in range(len(values))]
                cdf.plot(values, ys, label=KIND_LABELS[kind], color=KIND_COLORS[kind])
            for q, style in ((50, "-o"), (99, "--s")):
                xs, ys = [], []
                for level in levels:
                    data = sorted(samples.get(("streaming", kind, level), []))
                    if data:
                        xs.append(level)
                        ys.append(1000 * percentile(data, q))  # type: ignore[operator]
                if xs:
                    tail.plot(
                        xs, ys, style, color=KIND_COLORS[kind], markersize=4,
                        label=f"{KIND_LABELS[kind]} p{q}",
                    )  # fmt: skip
        cdf.set_xscale("symlog", linthresh=10)
        cdf.set_xlim(left=0)
        cdf.set_xlabel("added time to first token (ms)")
        cdf.set_ylabel("% of turns")
        cdf.set_title(f"Added TTFT distribution, {reference} sessions")
        cdf.grid(alpha=0.3)
        cdf.legend(fontsize=8)
        tail.set_xscale("log")
        tail.set_yscale("symlog", linthresh=10)
        tail.set_ylim(bottom=0)
        tail.set_xlabel("concurrent sessions")
        tail.set_ylabel("added TTFT (ms)")
        tail.set_title("Added TTFT p50 / p99 against concurrency")
        tail.grid(alpha=0.3)
        tail.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = out / "latency.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

        fig, (tokens, events) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=80)
        for kind in ("floor", "minimal", "backend"):
            rows = results["levels"]
            tokens.plot(
                levels, [r[kind]["tokens_per_s"] for r in rows], "-o", markersize=4,
                color=KIND_COLORS[kind], label=f"{KIND_LABELS[kind]} (streaming)",
            )  # fmt: skip
            sat = results.get("saturation", [])
            if sat:
                tokens.plot(
                    [r["sessions"] for r in sat], [r[kind]["tokens_per_s"] for r in sat], "--^",
                    markersize=5, color=KIND_COLORS[kind], label=f"{KIND_LABELS[kind]} (no delay)",
                )  # fmt: skip
            if kind != "floor":
                events.plot(
                    levels, [r[kind]["events_per_s"] for r in rows], "-o", markersize=4,
                    color=KIND_COLORS[kind], label=KIND_LABELS[kind],
                )  # fmt: skip
                events.plot(
                    levels, [r[kind]["turns_per_s"] * 10 for r in rows], ":",
                    color=KIND_COLORS[kind], label=f"{KIND_LABELS[kind]} turns/s x 10",
                )  # fmt: skip
        for axis, title, label in (
            (tokens, "Model tokens delivered per second", "tokens/s"),
            (events, "Socket.IO events and turns per second", "per second"),
        ):
            axis.set_xscale("log")
            axis.set_xlabel("concurrent sessions")
            axis.set_ylabel(label)
            axis.set_title(title)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        fig.tight_layout()
        path = out / "throughput.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def write(
    results: dict[str, Any], samples: dict[tuple[str, str, int], list[float]], out: Path
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # The added-TTFT samples behind the plots (ms), so that `python -m bench.report` redraws.
    results["added_ttft_samples_ms"] = {
        f"{phase}/{kind}/{level}": [round(1000 * v, 1) for v in values]
        for (phase, kind, level), values in samples.items()
        if phase in ("streaming", "saturation")
    }
    json_path = out / "bench.json"
    _write_json(json_path, results)
    md_path = out / "bench.md"
    md_path.write_text(markdown(results))
    return [json_path, md_path, *plots(results, samples, out)]


def _write_json(path: Path, results: dict[str, Any]) -> None:
    """bench.json, with the goals as this file states them."""
    results["goals"] = goals(results)
    path.write_text(json.dumps(results, indent=1) + "\n")


def redraw(json_path: Path) -> list[Path]:
    """The goals, markdown and plots again, from a bench.json (e.g. after a change to this
    file); the json gets the goals as this file now states them."""
    results = json.loads(json_path.read_text())
    _write_json(json_path, results)
    samples = {}
    for key, values in results.get("added_ttft_samples_ms", {}).items():
        phase, kind, level = key.split("/")
        samples[(phase, kind, int(level))] = [v / 1000 for v in values]
    md_path = json_path.with_name("bench.md")
    md_path.write_text(markdown(results))
    return [md_path, *plots(results, samples, json_path.parent)]


if __name__ == "__main__":
    import sys

    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results/bench.json"
    )
    print("\n".join(str(path) for path in redraw(target)))
