# Read the data source once and fix the train/validation/test split for every trial.


rule prepare_data:
    output:
        data=L.data,
        summary=L.data_summary,
    log:
        L.log("prepare_data"),
    benchmark:
        L.benchmark("prepare_data")
    conda:
        "../../envs/snaketune.yaml"
    params:
        data=config["data"],
        folds=config["cv"]["folds"],
    script:
        "../scripts/prepare_data.py"
