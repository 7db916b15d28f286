"""List the built-in default models: short name, folder, size and measured metrics.

    t2i models
    t2i models --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from t2i.builtin import BUILTIN, ROOT


def model_info(name: str) -> dict:
    folder = ROOT / name
    info = {"name": name, "folder": str(folder), "present": folder.is_dir(), "about": BUILTIN[name]}
    if folder.is_dir():
        info["megabytes"] = round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)
        metrics = folder / "metrics.json"
        info["metrics"] = json.loads(metrics.read_text()) if metrics.is_file() else {}
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2i models", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table (default: table)")
    args = parser.parse_args(argv)
    rows = [model_info(name) for name in BUILTIN]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = f"{row['megabytes']:.1f} MB" if row["present"] else "missing: run `t2i train defaults`"
        print(f"{row['name']:<18} {state:<12} {row['folder']}")
        print(f"{'':<18} {row['about']}")
        for key, value in (row.get("metrics") or {}).items():
            print(f"{'':<18}   {key}: {value}")
    total = sum(r.get("megabytes", 0.0) for r in rows)
    print(f"total: {total:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
