# One job per trial: run the trainer under the trainer contract, record result.json.


rule propose:
    input:
        **PROPOSE_CHAIN,
        **EARLIER_ROUNDS,
        results=earlier_round_results,
    output:
        proposals=L.round_file("{round}"),
    log:
        L.log("propose/round-{round}"),
    benchmark:
        L.benchmark("propose/round-{round}")
    conda:
        "../../envs/snaketune.yaml"
    # A proposal takes a fraction of a second of one core (in the warm worker, snaketune.scriptjob):
    # it holds no job slot, so that with search.parallel the trials keep every core while the
    # next trial is proposed.
    threads: 0
    params:
        **OBJECTIVES,
        size=round_size,
        search=PROPOSE_SEARCH,
        search_space=config["search_space"],
        direction=config["objective"]["direction"],
    script:
        "../scripts/propose.py"


# {run} is a trial id, or <trial>/fold-<k> with cross-validation (one job per trial and fold).
# The trainer also writes metrics.json, history.csv and checkpoint.pt there when it can; a failed
# trial may lack them, so result.json (which holds the metrics) is what the study reads.
rule train_trial:
    input:
        **TRIAL_PROPOSALS,
        data=L.data,
    output:
        **HISTORY_OUTPUT,
        result=L.result("{run}"),
        params=L.run_file("{run}", "params.yaml"),
    log:
        L.run_file("{run}", "train.log"),
    benchmark:
        L.run_file("{run}", "benchmark.tsv")
    conda:
        "../../envs/snaketune.yaml"
    threads: 1
    # Where and how fast a run trains (device, threads, timeout) is a resource, not a param: it is
    # not part of a trial's identity, so changing it never reruns a finished trial.
    resources:
        gpu=1,
        trial_timeout_s=TRAINER_TIMEOUT_S,
        trial_device=TRAINER_DEVICE,
    params:
        spec=trial_spec,
    shell:
        # exec: the runner is the job's process itself, so it stops (and stops its trainer) when
        # Snakemake dies, even by kill -9 of Snakemake alone (snaketune.supervise.die_with_parent).
        "exec snaketune-trial --spec {params.spec:q} --threads {threads} "
        "--timeout {resources.trial_timeout_s} --device {resources.trial_device}"
        + TRAIN_COPIES
        + " > {log:q} 2>&1"


# With search.trials_per_job > 1: several runs per job, each still with its own folder and result.
use rule train_trial as train_pack with:
    input:
        data=L.data,
        proposals=pack_proposals,
    output:
        pack=L.pack_file("{pack}"),
    log:
        L.pack_log("{pack}"),
    benchmark:
        L.benchmark("packs/pack-{pack}")
    params:
        spec=pack_spec,


rule collect:
    input:
        results=study_results,
        reeval=REEVAL_RESULTS,
    output:
        **PARETO,
        table=L.table,
        records=L.records,
    log:
        L.log("collect"),
    benchmark:
        L.benchmark("collect")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        param_names=PLAN.param_names,
    script:
        "../scripts/collect.py"
