# The exclusion contour (observed, expected, ±1σ/±2σ bands) of a merged scan, PNG and PDF.
rule contour:
    input:
        "results/{analysis}/scan.parquet",
    output:
        png="results/{analysis}/contour.png",
        pdf="results/{analysis}/contour.pdf",
    log:
        "logs/{analysis}/contour.log",
    localrule: True
    conda:
        ENVIRONMENT
    params:
        hfpipe=HFPIPE,
        cl=config["settings"]["cl"],
    shell:
        "{params.hfpipe} contour {input:q} --cl {params.cl} -o {output.png:q} -o {output.pdf:q} 2> {log:q}"
