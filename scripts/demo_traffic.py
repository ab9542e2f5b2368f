"""Simulated EHR traffic for `make demo`: post feature rows to the running prediction server.

The rows are the demo dataset's test split (synthetic, de-identified), read through bedside's
encrypted snapshot like any other bedside tool would; ``--shift`` multiplies every numeric
feature (a changed assay, a sicker population) so monitoring has drift to find. Each request
carries the stratification attributes (race, age group) that subgroup monitoring needs; they are
logged, never scored. Outcomes are posted for part of the requests, as labels arrive later in a
hospital.

    python scripts/demo_traffic.py PROJECT URL --seconds 70 [--shift 1.5] [--outcomes]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import httpx

from bedside.security import KeyRing
from bedside.stores.snapshots import find_snapshot, list_snapshots, read_snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--model", default="sepsis-prediction")
    args = parser.parse_args()
    root = args.project / "artifacts"
    newest = max(list_snapshots(root), key=lambda manifest: manifest.created_at)
    frame, _ = read_snapshot(find_snapshot(root, newest.digest), KeyRing(args.project / "keys"))
    test = frame[frame["split"] == "test"]
    schema = httpx.get(f"{args.url}/openapi.json", timeout=10).json()  # the server is up
    del schema
    names = [
        c
        for c in test.columns
        if c not in ("patient_id", "prediction_time", "split", "sepsis", "race", "age_group")
    ]
    rows = []
    for record in test[names].to_dict("records"):
        clean = {}
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, float):
                value = value * args.shift
            clean[key] = value
        rows.append(clean)
    strata = [c for c in ("race", "age_group") if c in test.columns]
    attributes = [
        {key: str(value) for key, value in record.items() if value == value and value is not None}
        for record in test[strata].to_dict("records")
    ]
    labels = test["sepsis"].tolist()
    sent = ok = 0
    outcomes = []
    deadline = time.monotonic() + args.seconds
    with httpx.Client(base_url=args.url, timeout=10) as client:
        while time.monotonic() < deadline:
            i = sent % len(rows)
            body = {"features": rows[i]}
            if attributes[i]:
                body["attributes"] = attributes[i]
            response = client.post(f"/v1/models/{args.model}/predict", json=body)
            sent += 1
            if response.status_code == 200:
                ok += 1
                if sent % 2 == 0:
                    outcomes.append(
                        {"request_id": response.json()["request_id"], "label": int(labels[i])}
                    )
            time.sleep(0.005)
        for start in range(0, len(outcomes), 200):
            client.post(
                f"/v1/models/{args.model}/outcomes",
                json={"outcomes": outcomes[start : start + 200]},
            )
    print(
        f"sent {sent} predictions ({ok} answered 200), {len(outcomes)} outcomes, "
        f"shift x{args.shift}"
    )


if __name__ == "__main__":
    main()
