# The model-independent limit table of the single-bin regions an analysis lists under
# `discovery`: one `hfpipe discovery-table` job an analysis → results/<name>/discovery.parquet
# and the table for a paper, discovery.md and discovery.tex.
# Its input functions are in rules/discovery_inputs.smk.


rule discovery_table:
    input:
        workspace=lambda wildcards: ANALYSES[wildcards.analysis]["workspace"],
    output:
        table="results/{analysis}/discovery.parquet",
        markdown="results/{analysis}/discovery.md",
        latex="results/{analysis}/discovery.tex",
    log:
        "logs/{analysis}/discovery.log",
    conda:
        ENVIRONMENT
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        hfpipe=HFPIPE,
        options=discovery_options,
        environment=job_environment(),
    shell:
        "{params.environment}{params.hfpipe} discovery-table {input.workspace:q} {params.options}"
        " -o {output.table:q} --markdown {output.markdown:q} --latex {output.latex:q}"
        " > {log:q} 2>&1"
