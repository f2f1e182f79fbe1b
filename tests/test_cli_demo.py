"""``alerts demo``: replay exchange + service + Binance source + sample rules, alerts printed.

Run as a newcomer would (a subprocess, no network), for a bounded time: every
sample rule is ACTIVE as soon as it is listed (warmed up from the exchange's
klines), rule alerts are printed as they fire, the connection the exchange
cuts comes back as DATA_QUALITY alerts, and the closing count matches.
"""

from __future__ import annotations

import re
import subprocess
import sys

from alerts.cli import DEMO_RULES


def test_demo_shows_warmed_up_rules_and_their_alerts_within_seconds() -> None:
    proc = subprocess.run([sys.executable, "-m", "alerts.cli", "demo", "--seconds", "12",
                           "--speed", "60", "--drop-after", "4"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("alerts demo: exchange http://127.0.0.1:")
    listed = lines[1:1 + len(DEMO_RULES)]
    assert [line.split(":")[0] for line in listed] == [f"rules/{r[0]}" for r in DEMO_RULES]
    assert all(line.endswith("STATE_ACTIVE") for line in listed), listed
    alerts = [line for line in lines if re.match(r"\d{4}-\d\d-\d\dT\S+Z  RULE  ", line)]
    assert alerts, proc.stdout
    fired = {line.split()[2].rstrip(":") for line in alerts}
    assert fired <= {r[0] for r in DEMO_RULES}
    quality = [line for line in lines if "  DATA_QUALITY  data quality: " in line]
    assert any("reconnected on binance" in line for line in quality), proc.stdout
    assert lines[-1] == f"alerts demo: {len(lines) - 1 - len(DEMO_RULES) - 1} alerts"
    assert "Traceback" not in proc.stderr
