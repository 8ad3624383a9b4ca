# Multi-fidelity schedules: each rung is a fixed set of slot jobs; `promote` fills the next rung.


rule promote:
    input:
        results=promote_inputs,
    output:
        promotion=L.promotion_file("{bracket}", "{rung}"),
    log:
        L.log("promote/b{bracket}-r{rung}"),
    benchmark:
        L.benchmark("promote/b{bracket}-r{rung}")
    conda:
        "../../envs/snaketune.yaml"
    params:
        **OBJECTIVE,
        n=promote_size,
    script:
        "../scripts/promote.py"


# One slot of a rung: its trial trains in trials/<trial>/rung-<i>/ (known only at run time).
use rule train_trial as train_rung with:
    input:
        unpack(slot_inputs),
        data=L.data,
    output:
        result=L.slot_file("{bracket}", "{rung}", "{slot}"),
    log:
        L.slot_log("{bracket}", "{rung}", "{slot}"),
    benchmark:
        L.benchmark("rungs/b{bracket}-r{rung}-s{slot}")
    params:
        spec=slot_spec,
