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


# The search's figures and the trials table need the search alone: they are drawn while the
# winner is retrained (rule plot_curves waits for the retrain).
rule plot_study:
    input:
        table=L.table,
        records=L.records,
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
        **OBJECTIVE,
        study=STUDY,
        search_space=config["search_space"],
    script:
        "../scripts/plot_study.py"


# The learning curves of the best trials and of the final retrain.
rule plot_curves:
    input:
        **CURVES_READ,
        records=L.records,
        final=L.final_file("metrics.json") if config["final"]["retrain"] else [],
    output:
        curves=report(
            L.figure("learning_curves.png"),
            caption=str(CAPTIONS / "learning_curves.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "learning curves"},
        ),
    log:
        L.log("plot_curves"),
    benchmark:
        L.benchmark("plot_curves")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        study=STUDY,
        top=5,
    script:
        "../scripts/plot_curves.py"


# The page the report opens on (report/workflow.rst includes it): the summary's results (rule
# summarise) and the optimisation history, embedded, so that the answer shows without a click.
# Several objectives (objective.also): the trials in the objectives' plane with the Pareto front,
# and how the front grew (a target only then).
rule plot_pareto:
    input:
        table=L.table,
        records=L.records,
    output:
        front=report(
            L.figure("pareto_front.png"),
            caption=str(CAPTIONS / "pareto_front.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "Pareto front"},
        ),
        hypervolume=report(
            L.figure("hypervolume.png"),
            caption=str(CAPTIONS / "hypervolume.rst"),
            category=STUDY,
            subcategory="search",
            labels={"figure": "hypervolume over trials"},
        ),
    log:
        L.log("plot_pareto"),
    benchmark:
        L.benchmark("plot_pareto")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        study=STUDY,
    script:
        "../scripts/plot_pareto.py"


# The report opens on the answer; its figure: the front with several objectives, else the
# optimisation history.
ANSWER_FIGURE = (
    L.figure("pareto_front.png")
    if config["objective"]["also"]
    else L.figure("optimisation_history.png")
)


rule answer_page:
    input:
        **PARETO_READ,
        table=L.table,
        winner=L.winner,
        final=L.final_file("metrics.json") if config["final"]["retrain"] else [],
        figure=ANSWER_FIGURE,
    output:
        page=report(
            L.figure("answer.html"),
            caption=str(CAPTIONS / "answer.rst"),
            category=STUDY,
            subcategory="the answer",
            labels={
                "figure": "the answer and the "
                + (
                    "Pareto front"
                    if config["objective"]["also"]
                    else "optimisation history"
                )
            },
        ),
    log:
        L.log("answer_page"),
    benchmark:
        L.benchmark("answer_page")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        searched=rules.summarise.params.searched,
        retrain=config["final"]["retrain"],
    script:
        "../scripts/answer_page.py"


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
        **SEARCH_HISTORIES,
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
        **OBJECTIVE,
        study=STUDY,
        search_space=config["search_space"],
        search=config["search"],
    script:
        "../scripts/export_optuna.py"


# What a plain run adds for people (final_targets, rule all): the figures, the table, the answer
# page, the journal.
REPORT_TARGETS = [
    *rules.plot_study.output,
    *rules.plot_curves.output,
    *rules.answer_page.output,
    *rules.export_optuna.output,
]
if config["objective"]["also"]:
    REPORT_TARGETS += rules.plot_pareto.output
if CONFUSION_MATRIX:
    REPORT_TARGETS += rules.plot_confusion_matrix.output
if PREDICTIONS:
    REPORT_TARGETS += rules.plot_predictions.output


# Exports to other tools: targets you ask for (`snakemake export_mlflow`, `snakemake
# export_tensorboard`), never part of a plain run; each needs its extra installed
# (pip install "snaketune[mlflow]" or "snaketune[tensorboard]"), which the jobs' conda env and
# container do not have: under --sdm, run the commands instead (README). Both replace their earlier
# export. They run where Snakemake runs (a tracking server is often reachable only from there).
localrules:
    export_mlflow,
    export_tensorboard,


# The study as MLflow runs, in its own store results/<study>/mlflow/ unless MLflow's own
# MLFLOW_TRACKING_URI (and MLFLOW_EXPERIMENT_NAME) name another; export.json says where it went.
# The destination is not a rerun trigger: to send a finished export elsewhere, add
# --forcerun export_mlflow. Its inputs are the finished study: the artifacts it attaches.
rule export_mlflow:
    input:
        records=L.records,
        study=final_targets(),
    output:
        receipt=L.mlflow_receipt,
    log:
        L.log("export_mlflow"),
    benchmark:
        L.benchmark("export_mlflow")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
        config=config,
    script:
        "../scripts/export_mlflow.py"


# The study as a TensorBoard log folder: tensorboard --logdir results/<study>/tensorboard
rule export_tensorboard:
    input:
        records=L.records,
    output:
        logdir=directory(L.tensorboard_dir),
    log:
        L.log("export_tensorboard"),
    benchmark:
        L.benchmark("export_tensorboard")
    conda:
        "../../envs/snaketune.yaml"
    params:
        study=STUDY,
    script:
        "../scripts/export_tensorboard.py"
