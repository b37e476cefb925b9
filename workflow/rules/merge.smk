# All parts of an analysis → results/<name>/scan.parquet, checked against the plan
# (same inputs and settings, every planned point exactly once). Cheap: runs locally.
rule merge:
    input:
        plan="results/{analysis}/chunks.json",
        parts=chunk_parts,
    output:
        "results/{analysis}/scan.parquet",
    log:
        "logs/{analysis}/merge.log",
    localrule: True
    conda:
        ENVIRONMENT
    params:
        hfpipe=HFPIPE,
    shell:
        "{params.hfpipe} merge {input.parts:q} --plan {input.plan:q} -o {output:q} 2> {log:q}"
