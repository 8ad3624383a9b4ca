# For people: the report's figures and trials table, the study as an Optuna journal.
# `snakemake --report results/<study>/report.html` gathers the outputs wrapped in report().
from snaketune.summary import print_run_summary  # the Snakefile's onsuccess handler
from snaketune.task import expected_task

# The test-set figure needs the built-in trainer's model file, and the task known when the workflow
# is planned (snaketune.task.expected_task): a confusion matrix for classes, predicted against true
# values for regression; none while prepare_data decides it (data.task auto, objective val_loss).
TEST_FIGURE = config["final"]["retrain"] and PLAN.builtin_trainer
CONFUSION_MATRIX = TEST_FIGURE and expected_task(config) == "classification"
PREDICTIONS = TEST_FIGURE and expected_task(config) == "regression"


rule plot_study:
    input:
        table=L.table,
        records=L.records,
        final=L.final_file("metrics.json") if config["final"]["retrain"] else [],
    output:
        history=report(
            L.figure("optimisation_history.png"),
            caption=str(CAPTIONS / "optimisation_history.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "optimisation history"},
        ),
        parallel=report(
            L.figure("parallel_coordinates.png"),
            caption=str(CAPTIONS / "parallel_coordinates.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "parallel coordinates"},
        ),
        importances=report(
            L.figure("param_importances.png"),
            caption=str(CAPTIONS / "param_importances.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "parameter importances"},
        ),
        slices=report(
            L.figure("slices.png"),
            caption=str(CAPTIONS / "slices.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "objective per parameter"},
        ),
        curves=report(
            L.figure("learning_curves.png"),
            caption=str(CAPTIONS / "learning_curves.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "learning curves"},
        ),
        table=report(
            L.figure("trials.html"),
            caption=str(CAPTIONS / "trials.rst"),
            category=STUDY,
            subcategory="trials",
            labels={"figure": "trials table"},
        ),
    log:
        L.log("plot_study"),
    benchmark:
        L.benchmark("plot_study")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        metric=config["objective"]["metric"],
        direction=config["objective"]["direction"],
        search_space=config["search_space"],
        top=5,
    script:
        "../scripts/plot_study.py"


rule plot_confusion_matrix:
    input:
        model=L.final_file("model.pt"),
        metrics=L.final_file("metrics.json"),
        data=L.data,
    output:
        plot=report(
            L.figure("confusion_matrix.png"),
            caption=str(CAPTIONS / "confusion_matrix.rst"),
            category=STUDY,
            subcategory="final model",
            labels={"figure": "confusion matrix (test set)"},
        ),
    log:
        L.log("plot_confusion_matrix"),
    benchmark:
        L.benchmark("plot_confusion_matrix")
    conda:
        "../../envs/snaketune.yaml"
    script:
        "../scripts/plot_confusion_matrix.py"


rule plot_predictions:
    input:
        model=L.final_file("model.pt"),
        metrics=L.final_file("metrics.json"),
        data=L.data,
    output:
        plot=report(
            L.figure("predictions.png"),
            caption=str(CAPTIONS / "predictions.rst"),
            category=STUDY,
            subcategory="final model",
            labels={"figure": "predicted against true values (test set)"},
        ),
    log:
        L.log("plot_predictions"),
    benchmark:
        L.benchmark("plot_predictions")
    conda:
        "../../envs/snaketune.yaml"
    script:
        "../scripts/plot_predictions.py"


rule export_optuna:
    input:
        table=L.table,
        records=L.records,
    output:
        journal=L.journal,
    log:
        L.log("export_optuna"),
    benchmark:
        L.benchmark("export_optuna")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        metric=config["objective"]["metric"],
        direction=config["objective"]["direction"],
        search_space=config["search_space"],
        search=config["search"],
    script:
        "../scripts/export_optuna.py"


# What a plain run adds for people (final_targets, rule all): the figures, the table, the journal.
REPORT_TARGETS = [*rules.plot_study.output, *rules.export_optuna.output]
if CONFUSION_MATRIX:
    REPORT_TARGETS += rules.plot_confusion_matrix.output
if PREDICTIONS:
    REPORT_TARGETS += rules.plot_predictions.output
