# The nuisance-parameter ranking of the points an analysis lists under `rank`: one job a
# point, `hfpipe rank` (all held-parameter fits in one batched call) → the table and the
# ranking plot, results/<name>/ranking/<point>.{parquet,png}.


rule ranking:
    input:
        unpack(analysis_inputs),
    output:
        table="results/{analysis}/ranking/{point}.parquet",
        plot="results/{analysis}/ranking/{point}.png",
    log:
        "logs/{analysis}/ranking_{point}.log",
    wildcard_constraints:
        point=r"[^/]+",
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        hfpipe=HFPIPE,
        options=rank_options(),
        environment=job_environment(),
    shell:
        "{params.environment}{params.hfpipe} rank {input.workspace:q} --patchset {input.patchset:q}"
        " --point {wildcards.point:q} {params.options} -o {output.table:q}"
        " --plot {output.plot:q} > {log:q} 2>&1"
