# Read the data source once, decide the task and fix the train/validation/test split for every trial.
from snaketune.data import prepare_params


rule prepare_data:
    input:
        **DATA_SOURCE,
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
        data=prepare_params(config["data"]),
        folds=config["cv"]["folds"],
    script:
        "../scripts/prepare_data.py"
