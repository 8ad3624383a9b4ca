# Validate the study config, plan the study once, and name the functions the rules ask.
import gc
import math
import os
import sys
import warnings
from functools import cache
from importlib.resources import files

try:
    import snaketune  # the library (no Snakemake imports inside), installed with `pip install -e .`
except ImportError:
    sys.exit(
        "\nsnaketune: the snaketune package is not installed in this Python environment "
        f"({sys.executable}).\nInstall it from the checkout: pip install -e .\n"
    )
from snaketune import worker
from snaketune.plan import StudyPlan
from snaketune.shutdown import drop_scheduler_timers  # onsuccess, onerror
from snaketune.shutdown import handle_stop_signals  # the Snakefile's onstart hook
from snaketune.shutdown import release, snakemake_version
from snaketune.specs import to_json

try:  # internals of Snakemake 9 (read in 9.27.1): see per_job
    from snakemake.common import get_function_params, overwrite_function_params

    SIGNATURES_ONCE = (release(snakemake_version()) or (0,))[0] == 9
except ImportError:
    SIGNATURES_ONCE = False


def per_job(func):
    """A function the rules call for every job (an input or params function), its parameters read
    once. Snakemake reads them with inspect.signature at each call, three times per job for a params
    function (issue 16); its own path helpers (snakemake.ioutils) record them once with
    overwrite_function_params, and get_function_params then returns that record: the same mapping.
    Only on Snakemake 9; elsewhere Snakemake inspects the function at each call, as it does.
    """
    if SIGNATURES_ONCE:
        overwrite_function_params(func, get_function_params(func))
    return func


# Without a shared file system (the Kubernetes executor; --shared-fs-usage none) Snakemake keeps
# the study's files in a storage provider and gives each job copies of what it declares: the jobs
# then declare every file they read (a run's history.csv for the learning curves, the user's data
# file, NSGA-II's earlier rounds) and name them by their copies (snaketune.scriptjob.in_study,
# snaketune-trial --study). A study that needs the shared file system says so before any job runs.
_fs_usage = getattr(
    getattr(workflow, "storage_settings", None), "shared_fs_usage", None
)
COPIES = _fs_usage is not None and not any(
    getattr(u, "name", "") == "INPUT_OUTPUT" for u in _fs_usage
)


def resolved_config(raw):
    """One config file = one study, checked before any job runs (errors name the key)."""
    try:
        # As a module (`module snaketune: config: ...`) the host hands over the whole study config;
        # the host's own --configfile files are not ours to read.
        in_module = workflow.modifier.skip_configfile
        cfg = snaketune.one_study(
            raw, [] if in_module else workflow.overwrite_configfiles
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", snaketune.config.StudySizeWarning)
            resolved = snaketune.resolve_config(cfg, shared_fs=not COPIES)
        for w in caught:  # said like the errors, without a source line
            print(f"\n{w.message}\n", file=sys.stderr)
        return resolved
    except snaketune.ConfigError as e:
        # A message for people, without Snakemake's stack of parse-time frames.
        print(f"\nsnaketune: the study config is invalid.\n{e}\n", file=sys.stderr)
        sys.exit(1)


_resolved = resolved_config(config)
config.clear()
config.update(_resolved)
# envs/snaketune.yaml installs snaketune from this checkout (for --sdm conda).
os.environ.setdefault("SNAKETUNE_SOURCE", str(workflow.basedir))

PLAN = StudyPlan(config)
# What is alive now (the modules, the config, the plan of every trial) lives as long as this
# process: out of the garbage collector's sight, which would walk it again at every full
# collection while the DAG grows, and once more at exit (docs/benchmarks.md, issue 16).
gc.freeze()
# The DAG that Snakemake builds next is the same: its objects, dozens per job, live to the end. At
# Python's default pace (a full collection every 10th collection of the middle generation) the
# collector walks them all over and over as they pile up: 14 times for 10,000 jobs, 5% of the CPU
# time of `snakemake -n`, for some 1,000 objects of garbage. Every 100th: 4 times (issue 16).
_gen0, _gen1, _ = gc.get_threshold()
gc.set_threshold(_gen0, _gen1, 100)
L = PLAN.layout  # every path of the study
STUDY = config["study"]
# The objective as the ranking rules' params: metric and direction, and `objectives` (the whole
# objective) only with objective.also or objective.constraints (snaketune.records.rule_params).
OBJECTIVES = snaketune.records.rule_params(config["objective"])
OBJECTIVE = dict(
    metric=config["objective"]["metric"],
    direction=config["objective"]["direction"],
    **OBJECTIVES,
)
# select.trial: the trial to retrain, named by the user (a param only when set, as OBJECTIVES).
SELECT_TRIAL = {"trial": config["select"]["trial"]} if config["select"]["trial"] else {}
# Several objectives: collect also writes the Pareto front.
PARETO = {"front": L.pareto} if config["objective"]["also"] else {}
# `snakemake --report results/<other study>/report.html` without that study's --configfile would
# write this study's report into the other's folder.
if L.foreign_report(sys.argv):
    print(f"\nsnaketune: {L.foreign_report(sys.argv)}\n", file=sys.stderr)
    sys.exit(1)
CAPTIONS = (
    files("snaketune") / "report"
)  # the report's captions, shipped with the library
# The time limit is a resource, not a param: params are a rerun trigger, and raising a
# limit must not rerun finished trials. 0 = no limit.
TRAINER_TIMEOUT_S = math.ceil(min(config["trainer"]["timeout"] or 0, 10**9))
TRAINER_DEVICE = config["trainer"]["device"]
# A local run forks its trials' trainers from a warm worker (snaketune.worker), which this
# Snakemake process owns; jobs that Snakemake runs elsewhere (cluster executors) or each in a
# container of its own (--sdm apptainer) never do.
_deployment = getattr(workflow, "deployment_settings", None)
worker.configure(
    os.environ,
    local=workflow.local_exec
    and not workflow.remote_exec
    and not workflow.subprocess_exec
    and not any(
        m.name == "APPTAINER" for m in getattr(_deployment, "deployment_method", ())
    ),
    # Without a shared file system the jobs work among copies of their files (no worker's fork).
    enabled=config["trainer"]["warm_worker"] and not COPIES,
)


def trainers_to_fork():
    """Whether this run has training jobs for the warm worker (each job that runs snaketune-trial:
    trials, packs, rung slots, re-runs with extra seeds, retrains), which hand their work to it
    unless they run a trainer.command: the onstart hook then starts the worker, which imports torch
    while Snakemake starts the first jobs (prepare_data, ...). Read from Snakemake's DAG as onstart
    sees it (its needrun jobs and their rules' shell commands; read in 9.1.4 and 9.27.1); False if
    that cannot be read, and the first such job starts the worker instead, as it always can.
    """
    if config["trainer"]["command"] is not None:
        return False
    try:
        if workflow.touch:  # --touch runs no job
            return False
        return any(
            "snaketune-trial" in (job.rule.shellcmd or "")
            for job in workflow.dag.needrun_jobs()
        )
    except (AttributeError, TypeError):
        return False


_needs_shared_fs = PLAN.needs_shared_fs() if COPIES else []
if _needs_shared_fs:
    print(
        "\nsnaketune: this study needs a shared file system, which this run has not (an executor "
        "such as Kubernetes, or --shared-fs-usage without input-output): "
        + "; ".join(_needs_shared_fs)
        + ". Run it where jobs share a file system (locally, SLURM), or leave these settings out.\n",
        file=sys.stderr,
    )
    sys.exit(1)
# Where the study's files are kept then (said at the end of a run).
_prefix = (workflow.storage_settings.default_storage_prefix or "") if COPIES else ""
STORED_AT = f"{_prefix.rstrip('/')}/{L.results}" if _prefix else L.results
# The training jobs' command: their spec's files are their copies (found from their log's path).
TRAIN_COPIES = f" --study {STUDY} --job-log {{log:q}}" if COPIES else ""
HISTORY_OUTPUT = {"history": L.run_file("{run}", "history.csv")} if COPIES else {}
SEARCH_HISTORIES = {"histories": PLAN.search_histories()} if COPIES else {}
CURVES_READ = dict(SEARCH_HISTORIES)  # the learning curves: the final retrains' too
if COPIES and config["final"]["retrain"] and PLAN.builtin_trainer:
    CURVES_READ["final_histories"] = (
        [L.final_file("history.csv")]
        if PLAN.final_repeats == 1
        else [L.final_file("history.csv", r) for r in range(PLAN.final_repeats)]
    )
# The summary names the Pareto front's size (several objectives): declared where it must be.
PARETO_READ = PARETO if COPIES else {}
# The user's data file (the built-in sources are made in the job).
DATA_SOURCE = (
    {"source": config["data"]["path"]}
    if COPIES and config["data"]["source"] in ("csv", "npz")
    else {}
)


wildcard_constraints:
    trial="[A-Za-z0-9][A-Za-z0-9_-]*",
    round="[0-9]+",
    bracket="[0-9]+",
    run="[A-Za-z0-9][A-Za-z0-9_-]*(/fold-[0-9]+)?",
    pack="[0-9]+",
    rung="[0-9]+",
    slot="[0-9]+",
    repeat="[0-9]+",
    seed="[0-9]+",


# The training jobs' specs (snaketune.specs): a param, so the spec is each job's identity.
@per_job
def trial_spec(wildcards):
    return run_spec_text(wildcards.run)


@cache  # Snakemake evaluates a job's params again before it runs the job: one text per run
def run_spec_text(run):
    return to_json(PLAN.run_spec(PLAN.run(run)))


@per_job
def pack_spec(wildcards):
    return to_json(PLAN.pack_spec(int(wildcards.pack)))


@per_job
def slot_spec(wildcards):
    return to_json(
        PLAN.slot_spec(int(wildcards.bracket), int(wildcards.rung), int(wildcards.slot))
    )


@per_job
def reeval_spec(wildcards):
    fold = int(wildcards.fold) if "fold" in wildcards.keys() else None
    return to_json(PLAN.reeval_spec(int(wildcards.slot), int(wildcards.seed), fold))


@per_job
def front_spec(wildcards):
    return to_json(PLAN.front_spec(int(wildcards.slot)))


@per_job
def final_spec(wildcards):
    repeat = wildcards.get("repeat")
    return to_json(PLAN.final_spec(None if repeat is None else int(repeat)))


# Inputs.
@per_job
def trial_proposals(wildcards):
    """A Bayesian trial's input: the file of the round that proposed it."""
    return PLAN.proposals_of([PLAN.run(wildcards.run).trial])


# Without Bayesian rounds a trial's only input is the data: neither an input function nor an empty
# list, which Snakemake would resolve for every job (issue 16).
TRIAL_PROPOSALS = {"proposals": trial_proposals} if PLAN.bayesian else {}


@per_job
def pack_proposals(wildcards):
    return PLAN.proposals_of([r.trial for r in PLAN.packs[int(wildcards.pack)]])


@per_job
def earlier_round_results(wildcards):
    return PLAN.earlier_round_results(int(wildcards.round))


@per_job
def previous_proposals(wildcards):
    return PLAN.previous_proposals(int(wildcards.round))


@per_job
def earlier_round_files(wildcards):
    return [L.round_file(j) for j in range(int(wildcards.round))]


# NSGA-II reads its generations from the earlier rounds' files (ancestors of the round, which
# without a shared file system it must declare).
EARLIER_ROUNDS = (
    {"rounds": earlier_round_files}
    if COPIES and config["search"]["sampler"] == "nsga2"
    else {}
)
# search.parallel: an asynchronous round also declares the round before it, so that everything
# it reads (every earlier proposal, the results of trials 0 .. k-W) is an ancestor of its job
# (snaketune.bayes, module docstring); rounds keep their inputs as they were.
PROPOSE_CHAIN = {"previous": previous_proposals} if PLAN.parallel else {}
# A round's settings as its param, a rerun trigger. Asynchronous rounds leave n_trials out, so
# that raising it adds rounds and reruns none (rounds keep the param they always had: a changed
# param would re-propose, and so retrain, every existing study).
PROPOSE_SEARCH = (
    {k: v for k, v in config["search"].items() if k != "n_trials"}
    if PLAN.parallel
    else config["search"]
)


@per_job
def round_size(wildcards):
    return PLAN.round_size(int(wildcards.round))


@per_job
def promote_inputs(wildcards):
    """Rung i's slots are filled from the results of rung i-1 of the same bracket."""
    return PLAN.rung_slot_files(int(wildcards.bracket), int(wildcards.rung) - 1)


@per_job
def promote_size(wildcards):
    return PLAN.rung_size(int(wildcards.bracket), int(wildcards.rung))


@per_job
def slot_inputs(wildcards):
    b, i, k = int(wildcards.bracket), int(wildcards.rung), int(wildcards.slot)
    if i > 0:
        return {"promotion": L.promotion_file(b, i)}
    return {"proposals": PLAN.proposals_of([PLAN.brackets[b].trials[k]])}


@per_job
def study_results(wildcards):
    """Every result record of the study: one per run, per pack, or per rung slot."""
    return PLAN.study_results()


# select.top_k: the re-evaluations collect reads, and the file select_best chooses among (both
# empty when it is 0, so a study without it has the same jobs and inputs as before).
REEVAL_RESULTS = PLAN.reeval_files()
TOP_TRIALS = L.top if PLAN.top_k else []


def final_outputs(repeat=None):
    """What a final retrain writes (the built-in trainer: also its history and model)."""
    out = {
        "metrics": L.final_file("metrics.json", repeat),
        "result": L.final_file("result.json", repeat),
        "params": L.final_file("params.yaml", repeat),
    }
    if PLAN.builtin_trainer:
        out["history"] = L.final_file("history.csv", repeat)
        out["model"] = L.final_file("model.pt", repeat)
    return out


def final_targets():
    targets = [L.table, L.best, L.summary]
    if config["final"]["retrain"]:
        targets.append(L.final_file("metrics.json"))
    if PLAN.front_k:
        targets.append(L.front_table)
    return targets + REPORT_TARGETS


def run_cores():
    """This run's --cores (the summary sizes its packing tip by it); None without one."""
    try:
        return workflow.cores
    except Exception:  # Snakemake raises when no core count was given (cluster runs)
        return None
