# final.front: more members of the Pareto front retrained and tested, beside the winner
# (snaketune.front); final/front.tsv compares them. Only with several objectives.


rule choose_front:
    input:
        records=L.records,
        winner=L.winner,
    output:
        front=L.front,
    log:
        L.log("choose_front"),
    benchmark:
        L.benchmark("choose_front")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        k=PLAN.front_k,
    script:
        "../scripts/choose_front.py"


# Slot {slot}: the slot-th member choose_front wrote, retrained as the winner is.
use rule train_trial as retrain_front with:
    input:
        front=L.front,
        data=L.data,
    output:
        result=L.front_file("{slot}"),
    log:
        L.front_dir("{slot}") + ".log",
    benchmark:
        L.benchmark("final/front-s{slot}")
    params:
        spec=front_spec,


rule front_table:
    input:
        winner=L.winner,
        final=L.final_file("metrics.json"),
        front=L.front,
        members=PLAN.front_files(),
    output:
        table=L.front_table,
    log:
        L.log("front_table"),
    benchmark:
        L.benchmark("front_table")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
    script:
        "../scripts/front_table.py"
