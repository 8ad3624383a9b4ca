# Multi-fidelity schedules: each rung is a fixed set of slot jobs; `promote` fills the next rung.


rule promote:
    input:
        results=promote_inputs,
    output:
        promotion=f"{RESULTS}/rungs/b{{bracket}}/promote-r{{rung}}.yaml",
    log:
        f"{RESULTS}/rungs/b{{bracket}}/promote-r{{rung}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/promote/b{{bracket}}-r{{rung}}.tsv"
    conda:
        "../../envs/snaketune.yaml"
    params:
        n=promote_size,
        direction=config["objective"]["direction"],
    script:
        "../scripts/promote.py"


rule train_rung:
    input:
        unpack(slot_inputs),
    output:
        result=f"{RESULTS}/rungs/b{{bracket}}/r{{rung}}/s{{slot}}.json",
    log:
        f"{RESULTS}/rungs/b{{bracket}}/r{{rung}}/s{{slot}}.log",
    benchmark:
        f"{RESULTS}/rungs/b{{bracket}}/r{{rung}}/s{{slot}}.benchmark.tsv"
    conda:
        "../../envs/snaketune.yaml"
    threads: 1
    resources:
        gpu=1,
        trial_timeout_s=TRAINER_TIMEOUT_S,
        runner=RUN_TRIAL,
    params:
        spec=slot_spec,
        device=TRAINER_DEVICE,
    shell:
        "python {resources.runner:q} --spec {params.spec:q} --threads {threads} "
        "--timeout {resources.trial_timeout_s} --device {params.device} > {log:q} 2>&1"
