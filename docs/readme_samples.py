"""Put a real run's output into README.md, so its samples cannot go stale or be typed by hand.

Run the default study on a fresh clone, then::

    snakemake --cores all
    python docs/readme_samples.py results/seed-grid

It replaces the block after each ``<!-- sample: NAME -->`` marker in README.md with the study's
file: ``summary`` -> ``summary.txt`` (what the run printed at its end). ``tests/test_readme.py``
checks that the samples have the shape a real run gives (the same lines, the table's columns).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLES = {"summary": "summary.txt"}


def sample_blocks(text: str) -> dict[str, str]:
    """The README's samples: NAME -> the text of the fenced block after its marker."""
    return {m["name"]: m["body"] for m in _blocks(text)}


def _blocks(text: str):
    return re.finditer(r"<!-- sample: (?P<name>[\w-]+) -->\n(?P<open>```[^\n]*\n)(?P<body>.*?)```", text, re.S)


def update(readme: Path, results: Path) -> list[str]:
    text = readme.read_text(encoding="utf-8")
    done = []
    for m in reversed(list(_blocks(text))):
        source = results / SAMPLES[m["name"]]
        body = source.read_text(encoding="utf-8").strip("\n") + "\n"
        text = text[: m.start("body")] + body + text[m.end("body") :]
        done.append(m["name"])
    readme.write_text(text, encoding="utf-8")
    return done


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0], "summary.txt").is_file():
        sys.exit("usage: python docs/readme_samples.py results/<study>   (a finished study: its summary.txt)")
    print(f"updated {', '.join(update(README, Path(argv[0])))} in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
