# One job a chunk: one batched `hfpipe scan` of the chunk's points → one Parquet part.
rule scan_chunk:
    input:
        unpack(analysis_inputs),
        plan="results/{analysis}/chunks.json",
    output:
        "results/{analysis}/parts/chunk_{chunk}.parquet",
    params:
        points=chunk_points,
        options=scan_options(),
        environment=job_environment(),
    log:
        "logs/{analysis}/scan_chunk_{chunk}.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.environment}{HFPIPE} scan {input.workspace:q} {input.patchset:q} --analysis {wildcards.analysis:q}"
        " --points {params.points:q} {params.options} -o {output:q} 2> {log:q}"
