"""Snakemake script: propose one round of a Bayesian search from the earlier rounds' results."""

import logging
import time
import warnings

from snaketune.bayes import bayes_trial_id, observations, propose_round
from snaketune.files import write_yaml
from snaketune.space import SearchSpace
from snaketune.table import iter_results

sm = snakemake  # noqa: F821 (injected by Snakemake)
r = int(sm.wildcards.round)
search = sm.params.search
with open(sm.log[0], "w") as log:
    logging.captureWarnings(True)
    logging.basicConfig(stream=log, level=logging.WARNING)
    warnings.simplefilter("default")
    t0 = time.perf_counter()
    # Every run's record (packs of search.trials_per_job expanded to their trials' results).
    runs = [record for _, record in iter_results(sm.input.results)]
    history = observations(runs, min_count=search["n_startup"])
    proposals = propose_round(
        SearchSpace.from_config(sm.params.search_space),
        r,
        sm.params.size,
        history,
        direction=sm.params.direction,
        sampler=search["sampler"],
        seed=search["seed"],
        n_startup=search["n_startup"],
    )
    trials = {bayes_trial_id(r, k): p for k, p in enumerate(proposals)}
    write_yaml(sm.output.proposals, {"round": r, "sampler": search["sampler"], "n_earlier": len(history), "trials": trials})
    n_failed = sum(o.value is None for o in history)
    print(
        f"round {r}: proposed {len(trials)} trials with {search['sampler']} from {len(history)} earlier "
        f"({n_failed} failed) in {time.perf_counter() - t0:.2f} s",
        file=log,
    )
