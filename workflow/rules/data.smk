# Read the data source once and fix the train/validation/test split for every trial.


rule prepare_data:
    output:
        data=DATA_FILE,
        summary=f"{RESULTS}/data/summary.json",
    log:
        f"{RESULTS}/logs/prepare_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data.tsv"
    conda:
        "../../envs/snaketune.yaml"
    params:
        data=config["data"],
        folds=config["cv"]["folds"],
    script:
        "../scripts/prepare_data.py"
