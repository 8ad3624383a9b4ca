# Validate the study config, plan its trials, and define the input functions the rules use.
import json
import math
import sys
from pathlib import Path

from snakemake.utils import validate

SCRIPTS_DIR = Path(workflow.current_basedir).parent / "scripts"
sys.path.insert(0, str(SCRIPTS_DIR))
import snaketune  # noqa: E402  (the library; no Snakemake imports inside)

# The Snakefile's hooks (onstart, onsuccess, onerror).
from snaketune.shutdown import defer_sigterm_handler, release_scheduler_timers


def resolved_config(raw):
    """One config file = one study, checked before any job runs (errors name the key)."""
    try:
        # As a module (`module snaketune: config: ...`) the host hands over the whole study config;
        # the host's own --configfile files are not ours to read.
        in_module = workflow.modifier.skip_configfile
        cfg = snaketune.one_study(
            raw, [] if in_module else workflow.overwrite_configfiles
        )
        return snaketune.resolve_config(cfg)
    except snaketune.ConfigError as e:
        # A message for people, without Snakemake's stack of parse-time frames.
        print(f"\nsnaketune: the study config is invalid.\n{e}\n", file=sys.stderr)
        sys.exit(1)


_resolved = resolved_config(config)
config.clear()
config.update(_resolved)
validate(config, schema="../schemas/config.schema.yaml")

STUDY = config["study"]
RESULTS = f"results/{STUDY}"
TRIALS_DIR = f"{RESULTS}/trials"
DATA_FILE = f"{RESULTS}/data/prepared.npz"
# The training rules get these paths as resources, not params: params (and the shell command) are
# rerun triggers, and a path there would retrain every finished trial once the checkout moves
# (a fresh clone, another mount point on the cluster).
RUN_TRIAL = str(SCRIPTS_DIR / "run_trial.py")
SUMMARISE = str(SCRIPTS_DIR / "summarise.py")
SCHEDULE = config["search"]["schedule"]
if SCHEDULE == "none":
    BRACKETS = []
    TRIALS = snaketune.plan_trials(config)
else:  # multi-fidelity: the configurations that start in each bracket's first rung
    BRACKETS = snaketune.plan_brackets(config)
    TRIALS = [t for plan in BRACKETS for t in plan.trials]
TRIAL_BY_ID = {t.id: t for t in TRIALS}
FOLDS = config["cv"]["folds"]
PARAM_NAMES = list(config["search_space"])
BUILTIN_TRAINER = config["trainer"]["command"] is None
# The time limit is a resource, not a param: params are a rerun trigger, and raising a
# limit must not rerun finished trials. 0 = no limit.
TRAINER_TIMEOUT_S = math.ceil(config["trainer"]["timeout"] or 0)
TRAINER_DEVICE = config["trainer"]["device"]


wildcard_constraints:
    trial="[A-Za-z0-9][A-Za-z0-9_-]*",
    round="[0-9]+",
    bracket="[0-9]+",
    run="[A-Za-z0-9][A-Za-z0-9_-]*(/fold-[0-9]+)?",
    pack="[0-9]+",
    rung="[0-9]+",
    slot="[0-9]+",


def trainer_settings():
    """What every run of the trainer shares (part of each trial's identity)."""
    return {
        "data": DATA_FILE,
        "command": config["trainer"]["command"],
        "metric": config["objective"]["metric"],
        "direction": config["objective"]["direction"],
        "patience": config["early_stopping"]["patience"],
        "min_delta": config["early_stopping"]["min_delta"],
        "family": config["model"]["family"],
    }


def round_file(round_index):
    return f"{RESULTS}/rounds/round-{round_index}.yaml"


def parse_run(wildcards):
    """(trial, fold) of a train_trial job: `<trial>` or `<trial>/fold-<k>`."""
    trial_id, _, fold = wildcards.run.partition("/")
    return TRIAL_BY_ID[trial_id], int(fold.removeprefix("fold-") or 0)


def trial_proposals(wildcards):
    """A Bayesian trial's input: the file of the round that proposed it."""
    trial, _ = parse_run(wildcards)
    return [] if trial.round is None else round_file(trial.round)


# Without Bayesian rounds a trial's only input is the data: a static input, which Snakemake
# resolves faster than a function per job (0.7 s of a 10,000-trial DAG).
TRIAL_PROPOSALS = trial_proposals if any(t.round is not None for t in TRIALS) else []


def earlier_round_results(wildcards):
    """Round r is proposed from the results of every trial of rounds 0 .. r-1 (with a schedule:
    every rung of brackets 0 .. r-1)."""
    r = int(wildcards.round)
    if BRACKETS:
        return [f for plan in BRACKETS[:r] for f in bracket_slot_files(plan)]
    if PACKS:
        return [
            pack_file(p)
            for p, runs in enumerate(PACKS)
            if runs[0][0].round is not None and runs[0][0].round < r
        ]
    return [
        f
        for t in TRIALS
        if t.round is not None and t.round < r
        for f in trial_run_files(t)
    ]


def slot_file(b, i, k):
    return f"{RESULTS}/rungs/b{b}/r{i}/s{k}.json"


def rung_slot_files(b, i):
    return [slot_file(b, i, k) for k in range(BRACKETS[b].bracket.rungs[i].n)]


def bracket_slot_files(plan):
    return [
        f
        for rung in plan.bracket.rungs
        for f in rung_slot_files(plan.bracket.index, rung.index)
    ]


def promotion_file(b, i):
    return f"{RESULTS}/rungs/b{b}/promote-r{i}.yaml"


def promote_inputs(wildcards):
    """Rung i's slots are filled from the results of rung i-1 of the same bracket."""
    return rung_slot_files(int(wildcards.bracket), int(wildcards.rung) - 1)


def promote_size(wildcards):
    return BRACKETS[int(wildcards.bracket)].bracket.rungs[int(wildcards.rung)].n


def slot_inputs(wildcards):
    b, i, k = int(wildcards.bracket), int(wildcards.rung), int(wildcards.slot)
    inputs = {"data": DATA_FILE}
    if i > 0:
        inputs["promotion"] = promotion_file(b, i)
    elif BRACKETS[b].trials[k].round is not None:
        inputs["proposals"] = round_file(BRACKETS[b].trials[k].round)
    return inputs


def slot_spec(wildcards):
    """The runner's description of one rung slot, as JSON (the trial is known only for rung 0)."""
    b, i, k = int(wildcards.bracket), int(wildcards.rung), int(wildcards.slot)
    plan = BRACKETS[b]
    rung = plan.bracket.rungs[i]
    spec = {
        "bracket": b,
        "rung": i,
        "slot": k,
        "slot_file": slot_file(b, i, k),
        "trials_dir": TRIALS_DIR,
        "budget": rung.budget,
        "last_rung": i == len(plan.bracket.rungs) - 1,
        "search_seed": config["search"]["seed"],
        "stage": "search",
        "fold": 0,
        "log": f"{RESULTS}/rungs/b{b}/r{i}/s{k}.log",
        **trainer_settings(),
    }
    if i == 0:
        trial = plan.trials[k]
        spec.update(trial=trial.id, params=trial.params, round=trial.round)
        if trial.params is None:
            spec.update(params_from=round_file(trial.round), params_key=trial.id)
    else:
        spec["promotion"] = promotion_file(b, i)
    return json.dumps(spec, sort_keys=True)


def study_results(wildcards):
    """Every result record of the study: one per trial, or one per rung slot with a schedule."""
    if BRACKETS:
        return [f for plan in BRACKETS for f in bracket_slot_files(plan)]
    return trial_results(wildcards)


def round_size(wildcards):
    return sum(1 for t in TRIALS if t.round == int(wildcards.round))


def trial_runs(trial):
    """A trial's runs: the trial itself, or one run per fold with cross-validation."""
    if FOLDS > 1:
        return [(trial, f, f"{trial.id}/fold-{f}") for f in range(FOLDS)]
    return [(trial, 0, trial.id)]


def trial_run_files(trial):
    """A trial's result record(s): one, or one per fold with cross-validation."""
    return [f"{TRIALS_DIR}/{run}/result.json" for _, _, run in trial_runs(trial)]


def run_spec(trial, fold, run):
    """The runner's description of one search run (a trial, or one fold of it)."""
    trial_dir = f"{TRIALS_DIR}/{run}"
    spec = {
        "trial": trial.id,
        "trial_dir": trial_dir,
        "params": trial.params,
        "round": trial.round,
        "stage": "search",
        "fold": fold,
        "folds": FOLDS,
        "seed": snaketune.trial_seed(config["search"]["seed"], trial.id, fold),
        "log": f"{trial_dir}/train.log",
        **trainer_settings(),
    }
    if trial.params is None:
        spec.update(params_from=round_file(trial.round), params_key=trial.id)
    return spec


def trial_spec(wildcards):
    """The runner's description of one train_trial job, as JSON."""
    trial, fold = parse_run(wildcards)
    return json.dumps(run_spec(trial, fold, wildcards.run), sort_keys=True)


# Packs (search.trials_per_job > 1), never mixing Bayesian rounds. Runs are dealt out in turn
# (pack k of n gets runs k, k+n, ...): a grid lists its costly corner together, and contiguous
# packs left one core idle for a fifth of the 27-grid's run.
PER_JOB = config["search"]["trials_per_job"]
PACKS = []
if PER_JOB > 1 and not BRACKETS:
    for _round in dict.fromkeys(t.round for t in TRIALS):
        _runs = [r for t in TRIALS if t.round == _round for r in trial_runs(t)]
        _n = -(-len(_runs) // PER_JOB)
        PACKS += [_runs[k::_n] for k in range(_n)]


def pack_file(p):
    return f"{RESULTS}/packs/pack-{p}.json"


def pack_inputs(wildcards):
    rounds = {trial.round for trial, _, _ in PACKS[int(wildcards.pack)]}
    inputs = {"data": DATA_FILE}
    if rounds != {None}:
        inputs["proposals"] = [round_file(r) for r in sorted(rounds)]
    return inputs


def pack_spec(wildcards):
    p = int(wildcards.pack)
    runs = [run_spec(trial, fold, run) for trial, fold, run in PACKS[p]]
    return json.dumps(
        {"pack": p, "pack_file": pack_file(p), "runs": runs}, sort_keys=True
    )


def final_spec(wildcards):
    spec = {
        "trial": "final",
        "trial_dir": f"{RESULTS}/final",
        "params": None,
        "params_from": f"{RESULTS}/best.yaml",
        "stage": "final",
        "fold": 0,
        "seed": snaketune.trial_seed(config["search"]["seed"], "final"),
        "log": f"{RESULTS}/final/train.log",
        **trainer_settings(),
    }
    return json.dumps(spec, sort_keys=True)


def trial_results(wildcards):
    if PACKS:
        return [pack_file(p) for p in range(len(PACKS))]
    return [f for t in TRIALS for f in trial_run_files(t)]


def final_outputs():
    out = {
        "metrics": f"{RESULTS}/final/metrics.json",
        "result": f"{RESULTS}/final/result.json",
    }
    if BUILTIN_TRAINER:
        out["model"] = f"{RESULTS}/final/model.pt"
    return out


def final_targets():
    targets = [f"{RESULTS}/trials.tsv", f"{RESULTS}/best.yaml"]
    if config["final"]["retrain"]:
        targets.append(f"{RESULTS}/final/metrics.json")
    return targets + REPORT_TARGETS


def run_cores():
    """This run's --cores (the summary sizes its packing tip by it); None without one."""
    try:
        return workflow.cores
    except Exception:  # Snakemake raises when no core count was given (cluster runs)
        return None
