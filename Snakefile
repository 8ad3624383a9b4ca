# snaketune: find the best hyperparameters of a PyTorch network, then retrain the winner.
#
#   prepare_data -> train_trial (one job per trial) -> collect -> select_best -> retrain_best
#   (bayes: a `propose` job per round; schedules: `train_rung` slots and `promote` per rung;
#   select.top_k: `choose_top`, then `train_reeval` slots re-run the top trials with extra seeds)
#
# The study is described by one config file (config/config.yaml by default, or
# --configfile config/examples/<study>.yaml); see config/README.md.
import os

from snakemake.utils import min_version

min_version("9.1.4")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


report: str(CAPTIONS / "workflow.rst")


# The image built from ./Dockerfile (tag it so): with --sdm apptainer every job runs in it. Where
# the image is belongs to the machine, not the study: SNAKETUNE_CONTAINER=/path/to/snaketune.sif
# runs a local image instead, for clusters that reach no registry (README, "Containers").
container: os.environ.get("SNAKETUNE_CONTAINER") or "docker://snaketune/snaketune:0.1.0"


# Seconds of bookkeeping: on a cluster they run on the submit host instead of waiting in the queue.
localrules:
    all,
    propose,
    promote,
    choose_top,
    collect,
    select_best,
    choose_front,
    front_table,
    plot_study,
    plot_curves,
    plot_pareto,
    answer_page,
    export_optuna,
    summarise,


include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/schedule.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/front.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),


# Snakemake 9 can deadlock on a SIGTERM that lands while it post-processes a finished job
# (SLURM sends one to a cancelled or timed-out head job): its handler runs on a thread instead.
# Its Ctrl-C leaves finished and stopped jobs marked incomplete: with local jobs SIGINT stops the
# same graceful way, passed on to the running jobs.
# A local run with trials to fork starts its warm worker now, without waiting for it.
onstart:
    handle_stop_signals(local_jobs=workflow.local_exec)
    if trainers_to_fork():
        worker.prestart()


# The end of a successful run (not a dry run) prints the study's summary. Either end stops this
# run's warm worker, if it started one, and the scheduler's last wake-up timer (Snakemake would
# wait up to a second for it before exiting), before Snakemake returns.
onsuccess:
    worker.stop()
    drop_scheduler_timers()
    if COPIES:  # the study's files are in the storage provider, not here
        print(
            f"\nsnaketune: study {STUDY} is done; its files are in {STORED_AT}/\n"
        )
    else:
        print_run_summary(
            L.results, config, workflow.overwrite_configfiles, cores=run_cores()
        )


onerror:
    worker.stop()
    drop_scheduler_timers()
