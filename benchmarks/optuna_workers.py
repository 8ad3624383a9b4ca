"""One Optuna worker of benchmarks/pipeline_overhead.py: the default study the way Optuna runs it.

    python benchmarks/optuna_workers.py PREPARED.npz OUT_DIR JOURNAL [--set YAML] &
    python benchmarks/optuna_workers.py PREPARED.npz OUT_DIR JOURNAL [--set YAML] &
    wait

Optuna's own multi-process pattern: every worker is a separate process that opens the same study
in a JournalStorage file (created by whichever comes first) and runs study.optimize until the
grid is done. The sampler is a GridSampler over the searched parameters of config/config.yaml's
search space, so the study's configurations are exactly the 27 that inprocess_loop.py plans; the
objective trains one with the same code (inprocess_loop.train_one: snaketune.train.train, one
thread, CPU) into OUT_DIR/<trial id>/ and returns the objective metric. `--set` is as in
inprocess_loop.py.

Exactly one training per configuration across all workers: GridSampler gives trial number n < 27
grid point n, so the first 27 trials are the 27 configurations; MaxTrialsCallback stops a worker
once 27 trials exist, and a trial numbered 27 or more (two workers that finished at the same
moment both went on) trains nothing: it stops its worker and is pruned. Each trained trial keeps
its snaketune trial id in the user attribute `trial_id` (pipeline_overhead.py checks them).
"""

from __future__ import annotations

import argparse

import optuna
import yaml
from inprocess_loop import quiet, study_config, train_one  # benchmarks/ is this script's sys.path[0]
from optuna.storages.journal import JournalFileBackend, JournalStorage

from snaketune.plan import grid_trial_id, plan_trials
from snaketune.space import Fixed, SearchSpace

STUDY = "pipeline-overhead"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="the prepared data (results/<study>/data/prepared.npz)")
    ap.add_argument("out", help="folder for the trials' files")
    ap.add_argument("journal", help="the study's JournalFileBackend file, shared by the workers")
    ap.add_argument("--set", default="{}", help="YAML mapping merged over config/config.yaml")
    args = ap.parse_args()
    cfg = study_config(yaml.safe_load(args.set))
    planned = {t.id: t.params for t in plan_trials(cfg)}
    space = SearchSpace.from_config(cfg["search_space"])
    searched = {p.name: p.grid_values() for p in space.searched()}
    fixed = {p.name: p.value for p in space.params if isinstance(p, Fixed)}

    def objective(trial: optuna.Trial) -> float:
        if trial.number >= len(planned):  # the grid is taken: train nothing more
            trial.study.stop()
            raise optuna.TrialPruned("grid exhausted")
        chosen = {name: trial.suggest_categorical(name, values) for name, values in searched.items()}
        trial_id = grid_trial_id({**fixed, **chosen})
        trial.set_user_attr("trial_id", trial_id)
        return train_one((trial_id, planned[trial_id], args.data, args.out, cfg))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet()  # the trainer prints a line per epoch
    study = optuna.create_study(
        study_name=STUDY,
        storage=JournalStorage(JournalFileBackend(args.journal)),
        sampler=optuna.samplers.GridSampler(searched, seed=cfg["search"]["seed"]),
        direction=cfg["objective"]["direction"],
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=len(planned), callbacks=[optuna.study.MaxTrialsCallback(len(planned), states=None)])


if __name__ == "__main__":
    main()
