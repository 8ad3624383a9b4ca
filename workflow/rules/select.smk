# Choose the best trial, then retrain it on train+validation and test it once.


rule select_best:
    input:
        table=L.table,
        records=L.records,
    output:
        best=L.best,
    log:
        L.log("select_best"),
    benchmark:
        L.benchmark("select_best")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        metric=config["objective"]["metric"],
        direction=config["objective"]["direction"],
    script:
        "../scripts/select_best.py"


if PLAN.final_repeats == 1:

    use rule train_trial as retrain_best with:
        input:
            best=L.best,
            data=L.data,
        output:
            **final_outputs(),
        log:
            L.final_file("train.log"),
        benchmark:
            L.benchmark("retrain_best")
        params:
            spec=final_spec,
            device=TRAINER_DEVICE,

else:  # final.repeats > 1: each retrain in final/repeat-<r>/, then `finalise` combines them

    use rule train_trial as retrain_best with:
        input:
            best=L.best,
            data=L.data,
        output:
            **final_outputs("{repeat}"),
        log:
            L.final_file("train.log", "{repeat}"),
        benchmark:
            L.benchmark("retrain_best/repeat-{repeat}")
        params:
            spec=final_spec,
            device=TRAINER_DEVICE,

    rule finalise:
        input:
            results=[L.final_file("result.json", r) for r in range(PLAN.final_repeats)],
            models=(
                [L.final_file("model.pt", r) for r in range(PLAN.final_repeats)]
                if PLAN.builtin_trainer
                else []
            ),
            data=L.data,
        output:
            metrics=L.final_file("metrics.json"),
            model=L.final_file("model.pt") if PLAN.builtin_trainer else [],
        log:
            L.log("finalise"),
        benchmark:
            L.benchmark("finalise")
        conda:
            "../../envs/snaketune.yaml"
        params:
            study=STUDY,
            repeats=PLAN.final_repeats,
            ensemble=config["final"]["ensemble"],
            builtin=PLAN.builtin_trainer,
        script:
            "../scripts/finalise.py"


# The study's summary for people (also printed at the end of a run).
rule summarise:
    input:
        table=L.table,
        best=L.best,
        final=L.final_file("metrics.json") if config["final"]["retrain"] else [],
    output:
        summary=L.summary,
    log:
        L.log("summarise"),
    conda:
        "../../envs/snaketune.yaml"
    params:
        searched=[
            p.name
            for p in snaketune.SearchSpace.from_config(
                config["search_space"]
            ).searched()
        ],
        retrain=config["final"]["retrain"],
        configfiles=workflow.overwrite_configfiles,
    script:
        "../scripts/summarise.py"
