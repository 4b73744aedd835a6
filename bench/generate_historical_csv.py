"""Write a synthetic historical-gift CSV in the import layout, streamed (flat memory at any size).

    python bench/generate_historical_csv.py /tmp/gifts-1m.csv --rows 1000000 --donors 200000
    python bench/generate_historical_csv.py --project-map /tmp/projects.csv
    manage.py import_historical_gifts TENANT --file /tmp/gifts-1m.csv --project-map /tmp/projects.csv \\
        --skip-contact-resolution --benchmark

The benchmark flag prints rows/s and peak RSS; the figures belong in the benchmarks write-up.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import sys

COLUMNS = [
    "donation_id",
    "donor_id",
    "email",
    "first_name",
    "last_name",
    "amount",
    "currency",
    "gift_date",
    "project",
    "gift_type",
    "notes",
]
PROJECTS = {f"campaign-{n}": f"PRJ{n:03d}" for n in range(1, 21)}
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "June"]
LAST = ["Ng", "Okafor", "Park", "Quinn", "Rossi", "Silva", "Tran", "Umar", "Vance", "Wu"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", help="CSV to write")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--donors", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--project-map", help="Also write the matching project map (CSV) here")
    args = parser.parse_args()
    if args.project_map:
        with open(args.project_map, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source_project", "project_code"])
            writer.writerows(PROJECTS.items())
    if not args.path:
        return 0
    rng = random.Random(args.seed)
    start = dt.date(2024, 7, 1)
    projects = list(PROJECTS)
    with open(args.path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for n in range(1, args.rows + 1):
            donor = rng.randint(1, args.donors)
            cents = rng.randint(500, 50_000)
            writer.writerow(
                [
                    f"hist-{n}",
                    f"donor-{donor}",
                    f"donor{donor}@example.org",
                    FIRST[donor % len(FIRST)],
                    LAST[donor // len(FIRST) % len(LAST)],
                    f"{cents // 100}.{cents % 100:02d}",
                    "USD",
                    (start + dt.timedelta(days=n % 730)).isoformat(),
                    projects[n % len(projects)],
                    "Credit",
                    "",
                ]
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
