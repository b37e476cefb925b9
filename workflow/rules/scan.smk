# One job a chunk: one batched `hfpipe scan` of the chunk's points → one Parquet part.
rule scan_chunk:
    input:
        unpack(analysis_inputs),
        plan="results/{analysis}/chunks.json",
    output:
        "results/{analysis}/parts/chunk_{chunk}.parquet",
    log:
        "logs/{analysis}/scan_chunk_{chunk}.log",
    conda:
        ENVIRONMENT
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        hfpipe=HFPIPE,
        source=points_source,
        points=chunk_points,
        options=scan_options(),
        environment=job_environment(),
    shell:
        "{params.environment}{params.hfpipe} scan {input.workspace:q} {params.source} --analysis {wildcards.analysis:q}"
        " --points {params.points:q} --workers {threads} {params.options} -o {output:q} 2> {log:q}"
