# For people: the report's figures and trials table, the study as an Optuna journal, the summary.
# `snakemake --report results/<study>/report.html` gathers the outputs wrapped in report().
from snaketune.summary import print_run_summary  # the Snakefile's onsuccess handler

REPORT_DIR = f"{RESULTS}/report"
# The confusion matrix needs the built-in trainer's model file.
CONFUSION_MATRIX = config["final"]["retrain"] and BUILTIN_TRAINER


rule plot_study:
    input:
        table=f"{RESULTS}/trials.tsv",
        records=f"{RESULTS}/trials.json",
        final=f"{RESULTS}/final/metrics.json" if config["final"]["retrain"] else [],
    output:
        history=report(
            f"{REPORT_DIR}/optimisation_history.png",
            caption="../report/optimisation_history.rst",
            category=STUDY,
            subcategory="search",
            labels={"figure": "optimisation history"},
        ),
        parallel=report(
            f"{REPORT_DIR}/parallel_coordinates.png",
            caption="../report/parallel_coordinates.rst",
            category=STUDY,
            subcategory="search",
            labels={"figure": "parallel coordinates"},
        ),
        importances=report(
            f"{REPORT_DIR}/param_importances.png",
            caption="../report/param_importances.rst",
            category=STUDY,
            subcategory="search",
            labels={"figure": "parameter importances"},
        ),
        slices=report(
            f"{REPORT_DIR}/slices.png",
            caption="../report/slices.rst",
            category=STUDY,
            subcategory="search",
            labels={"figure": "objective per parameter"},
        ),
        curves=report(
            f"{REPORT_DIR}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category=STUDY,
            subcategory="search",
            labels={"figure": "learning curves"},
        ),
        table=report(
            f"{REPORT_DIR}/trials.html",
            caption="../report/trials.rst",
            category=STUDY,
            subcategory="trials",
            labels={"figure": "trials table"},
        ),
    log:
        f"{RESULTS}/logs/plot_study.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_study.tsv"
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
        model=f"{RESULTS}/final/model.pt",
        metrics=f"{RESULTS}/final/metrics.json",
        data=DATA_FILE,
    output:
        plot=report(
            f"{REPORT_DIR}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category=STUDY,
            subcategory="final model",
            labels={"figure": "confusion matrix (test set)"},
        ),
    log:
        f"{RESULTS}/logs/plot_confusion_matrix.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_confusion_matrix.tsv"
    conda:
        "../../envs/snaketune.yaml"
    script:
        "../scripts/plot_confusion_matrix.py"


rule export_optuna:
    input:
        table=f"{RESULTS}/trials.tsv",
        records=f"{RESULTS}/trials.json",
    output:
        journal=f"{RESULTS}/optuna.journal",
    log:
        f"{RESULTS}/logs/export_optuna.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_optuna.tsv"
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
