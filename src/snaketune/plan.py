"""The plan: which trials a study runs, each with a stable id.

Grid ids are a short hash of the trial's full parameter set (its active parameters, with
``when:`` conditions), so widening a grid keeps the ids (and the finished results) of the
combinations it already had. Random ids are ``r0000``,
``r0001``, ... and trial ``i`` is drawn from its own seed, so raising ``n_trials`` keeps the
first trials as they were. Bayesian ids are ``b<round>-<k>``; their parameters are proposed
by the round's ``propose`` job. With ``search.parallel`` (asynchronous Bayesian search) every
trial after round 0 is a round of its own, ``b<round>-0``: raising ``n_trials`` adds rounds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from snaketune.schedule import Bracket, bracket, hyperband, successive_halving
from snaketune.space import SearchSpace
from snaketune.specs import FrontSpec, PackSpec, ReevalSpec, RunSpec, SlotSpec, TrainerSettings, builtin_trainer


@dataclass(frozen=True)
class Trial:
    id: str
    params: dict[str, Any] | None  # None: proposed at run time (bayes rounds)
    round: int | None = None


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical text of a parameter set (order-independent, 1 == 1.0 kept apart)."""
    return json.dumps({k: [type(v).__name__, v] for k, v in sorted(params.items())}, separators=(",", ":"))


def grid_trial_id(params: Mapping[str, Any]) -> str:
    return "g" + hashlib.sha256(params_key(params).encode()).hexdigest()[:10]


def random_trial_id(index: int) -> str:
    return f"r{index:04d}"


def trial_seed(search_seed: int, trial_id: str, fold: int = 0) -> int:
    """The training seed of one trial (and fold): stable, independent of scheduling."""
    digest = hashlib.sha256(f"{search_seed}:{trial_id}:{fold}".encode()).hexdigest()
    return int(digest[:8], 16)


def reeval_seed(search_seed: int, trial_id: str, seed: int, fold: int = 0) -> int:
    """The training seed of a trial's re-evaluation with extra seed ``seed`` (1, 2, ...;
    ``select.top_k``), and fold: its own, never the search run's."""
    return trial_seed(search_seed, f"{trial_id}:seed-{seed}", fold)


def plan_trials(config: Mapping[str, Any]) -> list[Trial]:
    """Every trial of a grid or random study, in a stable order."""
    space = SearchSpace.from_config(config["search_space"])
    search = config["search"]
    if search["method"] == "grid":
        return [Trial(grid_trial_id(p), p) for p in space.grid()]
    if search["method"] == "random":
        seed = search["seed"]
        return [Trial(random_trial_id(i), space.sample(seed, i)) for i in range(search["n_trials"])]
    if search["method"] == "bayes":
        from snaketune.bayes import round_trial_ids

        rounds = round_trial_ids(search["n_trials"], search["n_startup"], proposal_batch(search))
        return [Trial(tid, None, r) for r, ids in enumerate(rounds) for tid in ids]
    raise ValueError(f"unknown search.method {search['method']!r}")


def proposal_batch(search: Mapping[str, Any]) -> int:
    """Trials a Bayesian round proposes after round 0: ``search.batch``, or one with
    ``search.parallel`` (each later trial its own round, proposed from a sliding window)."""
    return 1 if search.get("parallel") else search["batch"]


@dataclass(frozen=True)
class Window:
    """What the ``propose`` job of an asynchronous round reads (``search.parallel`` W): trial k is
    proposed from the results of trials 0 .. k-W (``observed``, by proposal order) while trials
    k-W+1 .. k-1 are still running (``running``: their ids and the round files holding their
    parameters)."""

    observed: list[str]  # result files, every fold of trials 0 .. k-W
    running: list[tuple[str, str]]  # (trial id, round file) of trials k-W+1 .. k-1


@dataclass(frozen=True)
class BracketPlan:
    """A multi-fidelity bracket and the configurations that fill its first rung (slot k = trials[k])."""

    bracket: Bracket
    trials: list[Trial]


def plan_brackets(config: Mapping[str, Any]) -> list[BracketPlan]:
    """The brackets of a multi-fidelity study (``search.schedule`` successive_halving or hyperband).

    grid: every grid point starts in the bracket (hyperband: in every bracket, ids prefixed
    ``h<bracket>-``). random: successive halving starts ``n_trials`` configurations; hyperband
    repeats its brackets until at least ``n_trials`` have started, ids ``r0000`` on across
    brackets. bayes: every bracket's configurations are proposed from all earlier brackets'
    results (BOHB-like); successive halving makes each Bayesian round a bracket.
    """
    search = config["search"]
    schedule, method = search["schedule"], search["method"]
    R, r0, eta = int(config["search_space"]["epochs"]), search["min_epochs"], search["eta"]
    space = SearchSpace.from_config(config["search_space"])
    if method == "grid":
        grid = [Trial(grid_trial_id(p), p) for p in space.grid()]
        if schedule == "successive_halving":
            return [BracketPlan(successive_halving(len(grid), r0, R, eta), grid)]
        return [
            BracketPlan(
                bracket(len(grid), len(b.rungs) - 1, R, eta, b.index), [Trial(f"h{b.index}-{t.id}", t.params) for t in grid]
            )
            for b in hyperband(r0, R, eta)
        ]
    if method == "random":
        seed = search["seed"]
        if schedule == "successive_halving":
            brackets = [successive_halving(search["n_trials"], r0, R, eta)]
        else:
            brackets = hyperband(r0, R, eta, search["n_trials"])
        plans, i = [], 0
        for b in brackets:
            trials = [Trial(random_trial_id(i + k), space.sample(seed, i + k)) for k in range(b.n_configs)]
            i += b.n_configs
            plans.append(BracketPlan(b, trials))
        return plans
    if method == "bayes":
        from snaketune.bayes import bayes_trial_id, round_sizes

        if schedule == "successive_halving":
            sizes = round_sizes(search["n_trials"], search["n_startup"], search["batch"])
            brackets = [successive_halving(n, r0, R, eta, index=r) for r, n in enumerate(sizes)]
        else:
            brackets = hyperband(r0, R, eta, search["n_trials"])
        return [BracketPlan(b, [Trial(bayes_trial_id(b.index, k), None, b.index) for k in range(b.n_configs)]) for b in brackets]
    raise ValueError(f"unknown search.method {method!r}")


@dataclass(frozen=True)
class Run:
    """One search run of the trainer: a trial, or one fold of it with cross-validation."""

    trial: Trial
    fold: int
    name: str  # its folder under trials/ (layout.run_name)


class StudyPlan:
    """The whole study, built once from the resolved config: its trials, their runs (folds),
    Bayesian rounds, multi-fidelity brackets and packs, and the spec of every training job.

    The workflow's rules ask it for their targets, inputs and params; nothing else plans.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        from snaketune.layout import Layout

        self.config = config
        self.layout = Layout.of(config)
        search = config["search"]
        self.folds: int = config["cv"]["folds"]
        self.schedule: str = search["schedule"]
        if self.schedule == "none":
            self.brackets: list[BracketPlan] = []
            self.trials = plan_trials(config)
        else:  # the configurations that start in each bracket's first rung
            self.brackets = plan_brackets(config)
            self.trials = [t for b in self.brackets for t in b.trials]
        self._by_id = {t.id: t for t in self.trials}
        self.param_names: list[str] = list(config["search_space"])
        self.builtin_trainer: bool = builtin_trainer(config)
        self.packs = self._packs(search["trials_per_job"])
        # search.parallel W: asynchronous Bayesian search, a sliding window of W trials (0: rounds)
        self.parallel: int = (search.get("parallel") or 0) if self.bayesian and not self.brackets else 0
        self._round_start: dict[int, int] = {}  # round -> proposal index of its first trial
        self._round_sizes: dict[int | None, int] = {}
        for k, t in enumerate(self.trials):
            self._round_start.setdefault(t.round, k)
            self._round_sizes[t.round] = self._round_sizes.get(t.round, 0) + 1
        select = config.get("select") or {}
        self.top_k: int = select.get("top_k", 0)  # 0: the best trial wins, nothing is re-evaluated
        self.reeval_seeds: int = select.get("seeds", 0) if self.top_k else 0
        final = config.get("final") or {}
        # final.front: more members of the Pareto front retrained (only with the final retrain)
        self.front_k: int = final.get("front", 0) if final.get("retrain") else 0
        self._trainer: TrainerSettings | None = None  # trainer_settings()

    # trials and their runs
    def trial(self, trial_id: str) -> Trial:
        return self._by_id[trial_id]

    def runs(self, trial: Trial) -> list[Run]:
        """A trial's runs: the trial itself, or one run per fold with cross-validation."""
        from snaketune.layout import run_name

        if self.folds > 1:
            return [Run(trial, f, run_name(trial.id, fold=f)) for f in range(self.folds)]
        return [Run(trial, 0, trial.id)]

    def run(self, name: str) -> Run:
        """The search run whose folder is ``trials/<name>``."""
        from snaketune.layout import parse_run_name

        trial_id, fold = parse_run_name(name)
        return Run(self.trial(trial_id), fold, name)

    def run_results(self, trial: Trial) -> list[str]:
        return [self.layout.result(r.name) for r in self.runs(trial)]

    @property
    def bayesian(self) -> bool:
        return any(t.round is not None for t in self.trials)

    # Bayesian rounds
    def round_size(self, round_index: int) -> int:
        return self._round_sizes.get(round_index, 0)

    def earlier_round_results(self, round_index: int) -> list[str]:
        """Round r is proposed from the results of every run of rounds 0 .. r-1 (with a schedule:
        every rung slot of brackets 0 .. r-1; with packs: their packs' records).

        With ``search.parallel`` (see :meth:`window`) only the results that round r's window adds
        to round r-1's: those of trial k-W (the first asynchronous round: of trials 0 .. k-W), so
        that N trials make O(N) edges, not O(N²). With :meth:`previous_proposals` every result and
        proposal the round reads is then an ancestor of its job (module docstring of
        snaketune.bayes)."""
        if self.parallel:
            return [f for t in self._window_added(round_index) for f in self.run_results(t)]
        if self.brackets:
            return [f for b in self.brackets[:round_index] for f in self.bracket_slot_files(b.bracket.index)]
        if self.packs:
            return [
                self.layout.pack_file(p)
                for p, runs in enumerate(self.packs)
                if runs[0].trial.round is not None and runs[0].trial.round < round_index
            ]
        return [f for t in self.trials if t.round is not None and t.round < round_index for f in self.run_results(t)]

    def _round_trial_index(self, round_index: int) -> int:
        """Proposal index k of an asynchronous round's trial (round r >= 1 proposes trial
        ``b<r>-0``)."""
        return self._round_start[round_index]

    def _window_added(self, round_index: int) -> list[Trial]:
        if round_index == 0:
            return []
        last = self._round_trial_index(round_index) - self.parallel  # k - W
        first = 0 if round_index == 1 else last
        return self.trials[max(first, 0) : last + 1] if last >= 0 else []

    def previous_proposals(self, round_index: int) -> list[str]:
        """An asynchronous round's other declared input: round r-1's file (none for round 0)."""
        return [self.layout.round_file(round_index - 1)] if self.parallel and round_index > 0 else []

    def window(self, round_index: int) -> Window:
        """What asynchronous round r >= 1 (trial k) reads: the results of trials 0 .. k-W and the
        parameters of trials k-W+1 .. k-1. All are ancestors of its job through the chain of
        declared inputs (:meth:`earlier_round_results`, :meth:`previous_proposals`)."""
        if not self.parallel or round_index == 0:
            raise ValueError(f"round {round_index} has no sliding window (search.parallel is {self.parallel})")
        k = self._round_trial_index(round_index)
        cut = max(k - self.parallel + 1, 0)
        return Window(
            observed=[f for t in self.trials[:cut] for f in self.run_results(t)],
            running=[(t.id, self.layout.round_file(t.round)) for t in self.trials[cut:k]],
        )

    def proposals_of(self, trials: Sequence[Trial]) -> list[str]:
        """The round files that hold the parameters of ``trials`` (none for grid and random)."""
        rounds = sorted({t.round for t in trials if t.round is not None})
        return [self.layout.round_file(r) for r in rounds]

    # multi-fidelity schedules
    def rung_size(self, bracket: int, rung: int) -> int:
        return self.brackets[bracket].bracket.rungs[rung].n

    def rung_slot_files(self, bracket: int, rung: int) -> list[str]:
        return [self.layout.slot_file(bracket, rung, k) for k in range(self.rung_size(bracket, rung))]

    def bracket_slot_files(self, bracket: int) -> list[str]:
        return [f for r in self.brackets[bracket].bracket.rungs for f in self.rung_slot_files(bracket, r.index)]

    # packs (search.trials_per_job > 1), never mixing Bayesian rounds. Runs are dealt out in turn
    # (pack k of n gets runs k, k+n, ...): a grid lists its costly corner together.
    def _packs(self, per_job: int) -> list[list[Run]]:
        if per_job <= 1 or self.brackets:
            return []
        packs: list[list[Run]] = []
        for round_index in dict.fromkeys(t.round for t in self.trials):
            runs = [r for t in self.trials if t.round == round_index for r in self.runs(t)]
            n = -(-len(runs) // per_job)
            packs += [runs[k::n] for k in range(n)]
        return packs

    # what collect reads
    def study_results(self) -> list[str]:
        """Every result record of the study: per run, per pack, or per rung slot."""
        if self.brackets:
            return [f for b in self.brackets for f in self.bracket_slot_files(b.bracket.index)]
        if self.packs:
            return [self.layout.pack_file(p) for p in range(len(self.packs))]
        return [f for t in self.trials for f in self.run_results(t)]

    def search_histories(self) -> list[str]:
        """The ``history.csv`` of every search run (what the learning curves may read)."""
        from snaketune.layout import HISTORY

        return [self.layout.run_file(r.name, HISTORY) for t in self.trials for r in self.runs(t)]

    # Without a shared file system (Kubernetes; --shared-fs-usage none) a job gets only the files it
    # declares, as copies from the storage provider, and keeps only those it declares as outputs.
    def needs_shared_fs(self) -> list[str]:
        """What in this study needs a shared file system: files a job reads that it does not, or
        cannot, declare. Empty when the study runs without one."""
        needs = []
        if self.brackets:
            needs.append(
                f"search.schedule: {self.schedule} (a rung resumes its trials from the checkpoints of the "
                "rung before, which no job declares)"
            )
        if self.packs:
            needs.append("search.trials_per_job > 1 (a pack's job writes its trials' folders, which it does not declare)")
        if self.parallel:
            needs.append(
                "search.parallel (each proposal reads the results of every earlier trial, which it does not "
                "declare; Bayesian rounds of search.batch trials do)"
            )
        if self.front_k:
            needs.append(
                "final.front (a front member's model is written to a folder its job learns only when it runs, "
                "so the job cannot declare it)"
            )
        if self.config["data"]["source"] == "images":
            needs.append("data.source: images (a folder of images; give them as arrays: data.source npz)")
        return needs

    # select.top_k: the top trials re-run with extra seeds (slot i = the i-th trial of the top file)
    def reeval_slots(self) -> list[tuple[int, int, int | None]]:
        """(slot, seed, fold) of every re-evaluation job: seeds 1 .. select.seeds (seed 0 is the
        search run); with cross-validation one job per fold, else fold None."""
        folds = range(self.folds) if self.folds > 1 else [None]
        return [(i, j, f) for i in range(self.top_k) for j in range(1, self.reeval_seeds + 1) for f in folds]

    def reeval_files(self) -> list[str]:
        return [self.layout.reeval_file(i, j, f) for i, j, f in self.reeval_slots()]

    # the specs of the training jobs
    def trainer_settings(self) -> TrainerSettings:
        """What every run of the study shares: built once, the same frozen value in every spec."""
        if self._trainer is None:
            cfg = self.config
            self._trainer = TrainerSettings(
                data=self.layout.data,
                command=cfg["trainer"]["command"],
                metric=cfg["objective"]["metric"],
                direction=cfg["objective"]["direction"],
                patience=cfg["early_stopping"]["patience"],
                min_delta=cfg["early_stopping"]["min_delta"],
                family=cfg["model"]["family"],
                function=cfg["trainer"].get("function"),
            )
        return self._trainer

    @property
    def search_seed(self) -> int:
        return self.config["search"]["seed"]

    def run_spec(self, run: Run) -> RunSpec:
        trial = run.trial
        return RunSpec(
            trial=trial.id,
            dir=self.layout.run_dir(run.name),
            log=self.layout.run_file(run.name, "train.log"),
            stage="search",
            seed=trial_seed(self.search_seed, trial.id, run.fold),
            trainer=self.trainer_settings(),
            params=trial.params,
            params_from=None if trial.params is not None else self.layout.round_file(trial.round),
            params_key=None if trial.params is not None else trial.id,
            fold=run.fold,
            folds=self.folds,
            round=trial.round,
        )

    def pack_spec(self, pack: int) -> PackSpec:
        return PackSpec(pack, self.layout.pack_file(pack), tuple(self.run_spec(r) for r in self.packs[pack]))

    def slot_spec(self, bracket: int, rung: int, slot: int) -> SlotSpec:
        plan = self.brackets[bracket]
        rungs = plan.bracket.rungs
        first = None
        if rung == 0:
            first = replace(self.run_spec(self.runs(plan.trials[slot])[0]), budget=rungs[0].budget)
        return SlotSpec(
            bracket=bracket,
            rung=rung,
            slot=slot,
            file=self.layout.slot_file(bracket, rung, slot),
            budget=rungs[rung].budget,
            last_rung=rung == len(rungs) - 1,
            log=self.layout.slot_log(bracket, rung, slot),
            trials_dir=self.layout.trials_dir,
            search_seed=self.search_seed,
            trainer=self.trainer_settings(),
            first=first,
            promotion=None if rung == 0 else self.layout.promotion_file(bracket, rung),
        )

    def reeval_spec(self, slot: int, seed: int, fold: int | None = None) -> ReevalSpec:
        """A re-evaluation run: as the trial's search run (same early stopping; with
        cross-validation one fold of it), or with a schedule a fresh run to the largest budget with
        the rungs' settings (no early stopping, last epoch)."""
        trainer, budget = self.trainer_settings(), None
        if self.brackets:
            trainer, budget = replace(trainer, patience=0), max(b.bracket.rungs[-1].budget for b in self.brackets)
        return ReevalSpec(
            slot=slot,
            seed=seed,
            file=self.layout.reeval_file(slot, seed, fold),
            top=self.layout.top,
            log=self.layout.reeval_log(slot, seed, fold),
            trials_dir=self.layout.trials_dir,
            search_seed=self.search_seed,
            trainer=trainer,
            budget=budget,
            restore_best=not self.brackets,
            fold=fold or 0,
            folds=self.folds,
        )

    def front_files(self) -> list[str]:
        return [self.layout.front_file(k) for k in range(self.front_k)]

    def front_spec(self, slot: int) -> FrontSpec:
        """The retrain of the ``slot``-th front member choose_front wrote: as the winner's (stage
        final, the member's best epoch count, early stopping as configured)."""
        return FrontSpec(
            slot=slot,
            file=self.layout.front_file(slot),
            front=self.layout.front,
            dir=self.layout.front_dir(slot),
            log=f"{self.layout.front_dir(slot)}/train.log",
            search_seed=self.search_seed,
            trainer=self.trainer_settings(),
        )

    @property
    def final_repeats(self) -> int:
        """Retrains of the winner (``final.repeats``); with more than one, each has its own folder."""
        return self.config["final"]["repeats"]

    def final_spec(self, repeat: int | None = None) -> RunSpec:
        """The final retrain (``repeat`` None), or retrain ``repeat`` of several: repeat 0 has the
        single retrain's seed, the others seeds of their own."""
        layout = self.layout
        return RunSpec(
            trial="final",
            dir=layout.final_run_dir(repeat),
            log=layout.final_file("train.log", repeat),
            stage="final",
            seed=trial_seed(self.search_seed, f"final-{repeat}" if repeat else "final"),
            trainer=self.trainer_settings(),
            params_from=layout.winner,
        )


def _bracket_shapes(config: Mapping[str, Any], n: int, rounds: Mapping[int, int]) -> list[tuple[Bracket, int]]:
    """A schedule's brackets, each with how many times it occurs, for ``n`` configurations (grid
    size or n_trials) in Bayesian ``rounds`` ({size: count}; one round of n otherwise)."""
    search = config["search"]
    method, schedule = search["method"], search["schedule"]
    R, r0, eta = int(config["search_space"]["epochs"]), search["min_epochs"], search["eta"]
    if method == "grid" and schedule == "successive_halving":
        return [(successive_halving(n, r0, R, eta), 1)]
    if method == "grid":
        return [(bracket(n, len(b.rungs) - 1, R, eta, b.index), 1) for b in hyperband(r0, R, eta)]
    if schedule == "hyperband":  # one round of Hyperband's brackets, repeated until n configurations
        cycle = hyperband(r0, R, eta)
        repeats = max(1, -(-n // sum(b.n_configs for b in cycle)))
        return [(b, repeats) for b in cycle]
    if method == "random":
        return [(successive_halving(n, r0, R, eta), 1)]
    return [(successive_halving(size, r0, R, eta), count) for size, count in rounds.items()]  # bayes: a bracket per round


def full_budget_trials(config: Mapping[str, Any]) -> int | None:
    """How many configurations a schedule trains to its largest budget (the last rung of every
    bracket); None without a schedule. With several objectives only they make the study's front."""
    if config["search"]["schedule"] == "none":
        return None
    n, rounds = _configurations(config)
    return sum(b.rungs[-1].n * c for b, c in _bracket_shapes(config, n, rounds))


def _configurations(config: Mapping[str, Any]) -> tuple[int, dict[int, int]]:
    """(configurations: the grid's size or n_trials, and the trials per round as {round size: how
    many rounds of that size}: bayes n_startup, then batches, as bayes.round_sizes without listing
    the rounds; one round of all otherwise)."""
    search = config["search"]
    n = SearchSpace.from_config(config["search_space"]).grid_size() if search["method"] == "grid" else search["n_trials"]
    if search["method"] != "bayes":
        return n, {n: 1}
    first, batch = min(search["n_startup"], n), proposal_batch(search)
    full, rest = divmod(n - first, batch)
    rounds: dict[int, int] = {}
    for size, count in ((first, 1), (batch, full), (rest, int(rest > 0))):
        if count:
            rounds[size] = rounds.get(size, 0) + count
    return n, rounds


@dataclass(frozen=True)
class PlanSize:
    """How large a study is, counted from its config without building its plan (:func:`plan_size`)."""

    trials: int  # configurations: len(StudyPlan.trials)
    search_jobs: int  # the search's training jobs (runs, packs or rung slots): len(StudyPlan.study_results())
    other_jobs: int  # propose (per Bayesian round), promote (per rung), re-evaluation and final-retrain jobs

    @property
    def jobs(self) -> int:
        """The jobs of the DAG, but for the few per study (prepare_data, collect, select, report, ...)."""
        return self.search_jobs + self.other_jobs


def plan_size(config: Mapping[str, Any]) -> PlanSize:
    """The size of the plan :class:`StudyPlan` would build from ``config`` (resolved), by arithmetic
    on the grid's size, ``n_trials`` and the schedule's brackets: nothing per trial is allocated, so
    a config can be checked against the limits before a too large study is planned.

    >>> cfg = {"search": {"method": "random", "n_trials": 10**9, "schedule": "none", "trials_per_job": 1},
    ...        "search_space": {"lr": [0.1]}, "cv": {"folds": 5}}
    >>> plan_size(cfg).search_jobs
    5000000000
    """
    search = config["search"]
    method, schedule = search["method"], search["schedule"]
    folds = config["cv"]["folds"]
    n, rounds = _configurations(config)
    other = 0
    if schedule == "none":
        trials = n
        per_job = search["trials_per_job"]
        runs = {size * folds: count for size, count in rounds.items()}
        search_jobs = sum(-(-r // per_job) * c for r, c in runs.items()) if per_job > 1 else n * folds
        if method == "bayes":
            other += sum(rounds.values())  # a propose job per round
    else:
        brackets = _bracket_shapes(config, n, rounds)
        trials = sum(b.n_configs * c for b, c in brackets)
        search_jobs = sum(sum(r.n for r in b.rungs) * c for b, c in brackets)
        other += sum((len(b.rungs) - 1) * c for b, c in brackets)  # a promote job per later rung
        if method == "bayes":
            other += sum(c for _, c in brackets)  # a propose job per bracket
    select, final = config.get("select") or {}, config.get("final") or {}
    if select.get("top_k"):
        other += select["top_k"] * select["seeds"] * folds
    if final.get("retrain"):
        other += final.get("repeats", 1) + final.get("front", 0)
    return PlanSize(trials, search_jobs, other)
