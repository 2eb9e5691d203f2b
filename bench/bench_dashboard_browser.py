"""Compare in a real browser: 8 runs x 10,000 steps, from navigation until every chart is drawn with its points.

    python bench/bench_dashboard_browser.py [--runs 8 --steps 10000 --repeats 3 --width 1440]

Fills a throw-away SQLite store like bench_dashboard.py (4 settings x 2 seeds, running at their last step),
starts the dashboard (`python -m app`) on a free port and opens /compare?runs=... with grouping on (seeds folded
into a mean and a min-max band, the page's default) in headless Chromium (Debian's, through Playwright). The
clock is the page's own (performance.now(), from navigation start) and stops when the page holds one Plotly
chart per metric and every trace of every chart has its SVG path drawn with points.

- first visit: a fresh browser context (empty cache) on a dashboard process that has served nothing yet;
- first visit, warm server: another fresh context once the server has served the page;
- warm: the same context navigating to the page again (browser cache warm, server warm).
Also: a bare Streamlit page (Compare with nothing selected) as the floor at the same load, and the CPU seconds
that the dashboard process and the browser (with Playwright's driver) spend per warm visit, which unlike wall
time do not grow with the machine's load. Prints one JSON object (seconds), with the load average before and
after, since the 2 cores here are shared. Targets: under 3 s on a first visit and 2 s warm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the dashboard start-up and the Chromium the browser tests use

TARGET_FIRST, TARGET_WARM = 3.0, 2.0
DRAWN = """charts => {
    const divs = [...document.querySelectorAll('.js-plotly-plot')];
    if (divs.length < charts) return false;
    for (const div of divs) {
        const data = div._fullData || [];
        if (!data.length || data.some(t => !(t._length > 0))) return false;
        const paths = [...div.querySelectorAll('.scatterlayer .trace path.js-line, .scatterlayer .trace path.js-fill')];
        if (paths.length < data.length || paths.some(p => (p.getAttribute('d') || '').length < 10)) return false;
    }
    return performance.now();
}"""


def time_visit(page, url: str, charts: int) -> float:
    page.goto(url, wait_until="commit")
    try:
        handle = page.wait_for_function(DRAWN, arg=charts, timeout=120_000, polling=50)
    except Exception as exc:
        shot = REPO_ROOT / "artifacts" / "dashboard" / "bench-timeout.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
        raise SystemExit(f"the charts were not drawn within 120 s: see {shot}") from exc
    return round(handle.json_value() / 1000, 3)


def time_bare_page(page, url: str) -> float:
    """Streamlit's own floor at the same load: Compare with nothing selected, until its script run is done."""
    page.goto(url, wait_until="commit")
    page.get_by_text("Pick runs above").wait_for(timeout=120_000)
    return round(page.evaluate("performance.now()") / 1000, 3)


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and all its descendants (from /proc): unlike wall time on a
    shared machine, this does not grow with the load."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime (after the name: fields 14, 15)
        stack.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--extra", default="", help="more query parameters for the page, e.g. 'live=0&group=run'")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["OPD_DATA_DIR"] = data_dir
        os.environ.pop("OPD_DATABASE_URL", None)  # the embedded SQLite store, like bench_dashboard.py
        from bench_dashboard import fill_store

        from browser_pages import CHROMIUM, CHROMIUM_ARGS
        from dashboard_server import running_dashboard

        fill_seconds = fill_store(args.runs, args.steps)
        env = {**os.environ, "OPD_DATA_DIR": data_dir, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
        with running_dashboard(env, Path(data_dir) / "streamlit.log") as server:
            process, url = server.process, server.url
            query = "&".join(f"runs={i}" for i in range(1, args.runs + 1))
            compare = f"{url}/compare?{query}&keys=train/success&keys=train/entropy" + (
                f"&{args.extra}" if args.extra else ""
            )
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                viewport = {"width": args.width, "height": 1000}
                first = time_visit(browser.new_context(viewport=viewport).new_page(), compare, 2)
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                first_warm_server = time_visit(page, compare, 2)
                warm, server_cpu, all_cpu = [], [], []
                for _ in range(args.repeats):
                    server_before, all_before = cpu_seconds(process.pid), cpu_seconds(os.getpid())
                    warm.append(time_visit(page, compare, 2))
                    server_cpu.append(round(cpu_seconds(process.pid) - server_before, 2))
                    all_cpu.append(round(cpu_seconds(os.getpid()) - all_before, 2))
                points = page.locator(".js-plotly-plot").evaluate_all(
                    "divs => divs.map(d => (d._fullData || []).reduce((n, t) => n + (t._length || 0), 0))"
                )
                bare = [time_bare_page(page, f"{url}/compare") for _ in range(args.repeats)]
                browser.close()
    result = {
        "runs": args.runs,
        "steps": args.steps,
        "width": args.width,
        "grouping": "settings (seeds folded)",
        "extra": args.extra,
        "fill_seconds": round(fill_seconds, 1),
        "first_visit_s": first,
        "first_visit_warm_server_s": first_warm_server,
        "warm_s": warm,
        "warm_median_s": sorted(warm)[len(warm) // 2],
        "bare_streamlit_page_s": bare,
        "warm_cpu_s_server": server_cpu,
        "warm_cpu_s_browser": [round(a - b, 2) for a, b in zip(all_cpu, server_cpu)],
        "points_per_chart": points,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "target_first_s": TARGET_FIRST,
        "target_warm_s": TARGET_WARM,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
