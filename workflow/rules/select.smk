# Choose the best trial (select/winner.yaml), then retrain it on train+validation and test it once;
# `summarise` writes the answer (best.yaml, summary.txt).


# select.top_k: the k best trials of the search, to be trained again with extra seeds (select.seeds
# is not a param here: raising it adds re-evaluation jobs and redoes none).
rule choose_top:
    input:
        results=study_results,
    output:
        top=L.top,
    log:
        L.log("choose_top"),
    benchmark:
        L.benchmark("choose_top")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        k=PLAN.top_k,
    script:
        "../scripts/choose_top.py"


# Slot {slot} of the top trials, re-run with extra seed {seed}: its trial trains in
# trials/<trial>/seed-<seed>/ (known only at run time); with cross-validation each fold is a job of
# its own ({fold}). collect reads them all.
REEVAL_FOLD = "{fold}" if PLAN.folds > 1 else None


use rule train_trial as train_reeval with:
    input:
        top=L.top,
        data=L.data,
    output:
        result=L.reeval_file("{slot}", "{seed}", REEVAL_FOLD),
    log:
        L.reeval_log("{slot}", "{seed}", REEVAL_FOLD),
    benchmark:
        L.benchmark(
            "select/s{slot}-seed-{seed}" + ("-fold-{fold}" if REEVAL_FOLD else "")
        )
    params:
        spec=reeval_spec,


rule select_best:
    input:
        table=L.table,
        records=L.records,
        top=TOP_TRIALS,
    output:
        winner=L.winner,
    log:
        L.log("select_best"),
    benchmark:
        L.benchmark("select_best")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        **SELECT_TRIAL,
        study=STUDY,
    script:
        "../scripts/select_best.py"


if PLAN.final_repeats == 1:

    use rule train_trial as retrain_best with:
        input:
            winner=L.winner,
            data=L.data,
        output:
            **final_outputs(),
        log:
            L.final_file("train.log"),
        benchmark:
            L.benchmark("retrain_best")
        params:
            spec=final_spec,

else:  # final.repeats > 1: each retrain in final/repeat-<r>/, then `finalise` combines them

    use rule train_trial as retrain_best with:
        input:
            winner=L.winner,
            data=L.data,
        output:
            **final_outputs("{repeat}"),
        log:
            L.final_file("train.log", "{repeat}"),
        benchmark:
            L.benchmark("retrain_best/repeat-{repeat}")
        params:
            spec=final_spec,

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


# The answer: best.yaml (the winner, its validation and test scores, the gap) and the same for
# people, summary.txt (also printed at the end of a run; the report opens on its results, rule
# answer_page).
rule summarise:
    input:
        **PARETO_READ,
        table=L.table,
        winner=L.winner,
        final=L.final_file("metrics.json") if config["final"]["retrain"] else [],
    output:
        summary=L.summary,
        best=L.best,
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
