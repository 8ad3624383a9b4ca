# Choose the best trial, then retrain it on train+validation and test it once.


rule select_best:
    input:
        table=f"{RESULTS}/trials.tsv",
        records=f"{RESULTS}/trials.json",
    output:
        best=f"{RESULTS}/best.yaml",
    log:
        f"{RESULTS}/logs/select_best.log",
    benchmark:
        f"{RESULTS}/benchmarks/select_best.tsv"
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        metric=config["objective"]["metric"],
        direction=config["objective"]["direction"],
    script:
        "../scripts/select_best.py"


rule retrain_best:
    input:
        best=f"{RESULTS}/best.yaml",
        data=DATA_FILE,
    output:
        **final_outputs(),
    log:
        f"{RESULTS}/final/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/retrain_best.tsv"
    conda:
        "../../envs/snaketune.yaml"
    threads: 1
    resources:
        gpu=1,
        trial_timeout_s=TRAINER_TIMEOUT_S,
        runner=RUN_TRIAL,
        summarise=SUMMARISE,
    params:
        spec=final_spec,
        device=TRAINER_DEVICE,
        results=lambda wildcards, input: Path(input.best).parent,
    shell:
        # The study's summary ends the log; a summary that cannot be written never fails the job.
        "python {resources.runner:q} --spec {params.spec:q} --threads {threads} "
        "--timeout {resources.trial_timeout_s} --device {params.device} > {log:q} 2>&1 && "
        "{{ python {resources.summarise:q} --results {params.results:q} >> {log:q} 2>&1 || true; }}"
