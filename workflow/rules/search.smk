# One job per trial: run the trainer under the trainer contract, record result.json.


rule propose:
    input:
        results=earlier_round_results,
    output:
        proposals=f"{RESULTS}/rounds/round-{{round}}.yaml",
    log:
        f"{RESULTS}/logs/propose/round-{{round}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/propose/round-{{round}}.tsv"
    conda:
        "../../envs/snaketune.yaml"
    params:
        size=round_size,
        search=config["search"],
        search_space=config["search_space"],
        direction=config["objective"]["direction"],
    script:
        "../scripts/propose.py"


# {run} is a trial id, or <trial>/fold-<k> with cross-validation (one job per trial and fold).
rule train_trial:
    input:
        data=DATA_FILE,
        proposals=TRIAL_PROPOSALS,
    output:
        result=f"{TRIALS_DIR}/{{run}}/result.json",
    log:
        f"{TRIALS_DIR}/{{run}}/train.log",
    benchmark:
        f"{TRIALS_DIR}/{{run}}/benchmark.tsv"
    conda:
        "../../envs/snaketune.yaml"
    threads: 1
    resources:
        gpu=1,
        trial_timeout_s=TRAINER_TIMEOUT_S,
        runner=RUN_TRIAL,
    params:
        spec=trial_spec,
        device=TRAINER_DEVICE,
    shell:
        "python {resources.runner:q} --spec {params.spec:q} --threads {threads} "
        "--timeout {resources.trial_timeout_s} --device {params.device} > {log:q} 2>&1"


# With search.trials_per_job > 1: several runs per job, each still with its own folder and result.
rule train_pack:
    input:
        unpack(pack_inputs),
    output:
        pack=f"{RESULTS}/packs/pack-{{pack}}.json",
    log:
        f"{RESULTS}/packs/pack-{{pack}}.log",
    benchmark:
        f"{RESULTS}/packs/pack-{{pack}}.benchmark.tsv"
    conda:
        "../../envs/snaketune.yaml"
    threads: 1
    resources:
        gpu=1,
        trial_timeout_s=TRAINER_TIMEOUT_S,
        runner=RUN_TRIAL,
    params:
        spec=pack_spec,
        device=TRAINER_DEVICE,
    shell:
        "python {resources.runner:q} --spec {params.spec:q} --threads {threads} "
        "--timeout {resources.trial_timeout_s} --device {params.device} > {log:q} 2>&1"


rule collect:
    input:
        results=study_results,
    output:
        table=f"{RESULTS}/trials.tsv",
        records=f"{RESULTS}/trials.json",
    log:
        f"{RESULTS}/logs/collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect.tsv"
    conda:
        "../../envs/snaketune.yaml"
    params:
        param_names=PARAM_NAMES,
        metric=config["objective"]["metric"],
        direction=config["objective"]["direction"],
    script:
        "../scripts/collect.py"
