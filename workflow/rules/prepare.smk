# Validate the inputs once and split the points into chunks of `chunk_size`. A checkpoint:
# the number of scan jobs is known only after it ran. Cheap, so it runs where Snakemake runs.
checkpoint prepare:
    input:
        unpack(analysis_inputs),
    output:
        "results/{analysis}/chunks.json",
    log:
        "logs/{analysis}/prepare.log",
    localrule: True
    conda:
        ENVIRONMENT
    params:
        hfpipe=HFPIPE,
        source=points_source,
        points=points_option,
        chunk_size=config["chunk_size"],
    shell:
        "{params.hfpipe} prepare {input.workspace:q} {params.source} --analysis {wildcards.analysis:q}"
        " --chunk-size {params.chunk_size} {params.points} -o {output:q} 2> {log:q}"
