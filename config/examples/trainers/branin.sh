#!/bin/sh
# A custom "trainer" in plain POSIX shell + awk, to show that trainer.command may be anything.
# It scores the Branin function (global minimum 0.397887) at the trial's (x1, x2) and reports
# it as `loss` (the study minimizes it). It reads the trainer contract's variables:
#   SNAKETUNE_PARAMS  flat YAML with x1 and x2    SNAKETUNE_OUT  where metrics.json goes
set -eu
x1=$(awk -F': *' '$1 == "x1" {print $2}' "$SNAKETUNE_PARAMS")
x2=$(awk -F': *' '$1 == "x2" {print $2}' "$SNAKETUNE_PARAMS")
if [ -z "$x1" ] || [ -z "$x2" ]; then
  echo "branin.sh: params must define x1 and x2" >&2
  exit 2
fi
awk -v x1="$x1" -v x2="$x2" 'BEGIN {
  pi = atan2(0, -1)
  a = 1; b = 5.1 / (4 * pi * pi); c = 5 / pi; r = 6; s = 10; t = 1 / (8 * pi)
  f = a * (x2 - b * x1 * x1 + c * x1 - r) ^ 2 + s * (1 - t) * cos(x1) + s
  printf "{\"loss\": %.10g, \"x1\": %.10g, \"x2\": %.10g}\n", f, x1, x2
}' > "$SNAKETUNE_OUT/metrics.json.tmp"
mv "$SNAKETUNE_OUT/metrics.json.tmp" "$SNAKETUNE_OUT/metrics.json"
