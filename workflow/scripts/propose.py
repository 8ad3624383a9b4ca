"""Snakemake script: propose one round of a Bayesian search from the earlier rounds' results."""

import os
import sys

from snaketune import worker
from snaketune.scriptjob import hand_over

# The rest runs in the run's warm worker when it has one (its imports are warm there).
sm = hand_over(snakemake, __file__)  # noqa: F821 (injected by Snakemake)
worker.one_thread_for_zero(os.environ)  # the rule's threads: 0 (it holds no job slot) exports 0s
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

import logging  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import replace  # noqa: E402

from snaketune.bayes import Observation, bayes_trial_id, observations, propose_round  # noqa: E402
from snaketune.files import read_yaml, write_yaml  # noqa: E402
from snaketune.layout import Layout  # noqa: E402
from snaketune.plan import StudyPlan  # noqa: E402
from snaketune.records import Objective, iter_results  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

r = int(sm.wildcards.round)
search = sm.params.search
logging.captureWarnings(True)
logging.basicConfig(stream=log, level=logging.WARNING)
warnings.simplefilter("default")
t0 = time.perf_counter()
running = []
if search.get("parallel") and r > 0:
    # search.parallel: trial k from the results of trials 0 .. k-W, trials k-W+1 .. k-1 running.
    # The job declares only round r-1's file and trial k-W's results; the other files read here
    # are ancestors of it through that chain, so they exist and a changed one reruns this round.
    window = StudyPlan(sm.config).window(r)
    runs = [record for _, record in iter_results(window.observed)]
    round_files = {f: read_yaml(f)["trials"] for f in dict.fromkeys(f for _, f in window.running)}
    running = [Observation(tid, round_files[f][tid], None) for tid, f in window.running]
else:
    # Every run's record (packs of search.trials_per_job expanded to their trials' results).
    runs = [record for _, record in iter_results(sm.input.results)]
# objective.also / objective.constraints: every objective's value and the limits (else None).
objective = Objective.from_config(sm.params.objectives) if "objectives" in sm.params.keys() else None
history = observations(runs, min_count=search["n_startup"], objective=objective)
if search["sampler"] == "nsga2" and r > 0:
    # NSGA-II's generations: each earlier proposal's, from its round's file (an ancestor of this
    # job: its trials' results are this job's inputs).
    layout = Layout(sm.config["study"])
    attrs = {}
    for j in range(r):
        attrs.update(read_yaml(layout.round_file(j)).get("sampler_attrs") or {})
    history = [replace(o, attrs=attrs.get(o.trial)) for o in history]
sampler_attrs = []
proposals = propose_round(
    SearchSpace.from_config(sm.params.search_space),
    r,
    sm.params.size,
    history,
    direction=objective.directions if objective else sm.params.direction,
    sampler=search["sampler"],
    seed=search["seed"],
    n_startup=search["n_startup"],
    limits=[str(lim) for lim in objective.limits] if objective else (),
    running=running,
    population=search["batch"],
    sampler_attrs=sampler_attrs,
)
trials = {bayes_trial_id(r, k): p for k, p in enumerate(proposals)}
window_note = {"running": [o.trial for o in running]} if search.get("parallel") else {}
if sampler_attrs:
    window_note["sampler_attrs"] = {bayes_trial_id(r, k): a for k, a in enumerate(sampler_attrs)}
write_yaml(
    sm.output.proposals,
    {"round": r, "sampler": search["sampler"], "n_earlier": len(history), **window_note, "trials": trials},
)
n_failed = sum(o.value is None for o in history)
print(
    f"round {r}: proposed {len(trials)} trials with {search['sampler']} from {len(history)} earlier "
    f"({n_failed} failed{f', {len(running)} running' if running else ''}) in {time.perf_counter() - t0:.2f} s",
    file=log,
)
