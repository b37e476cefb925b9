# The exclusion contour (observed, expected, ±1σ/±2σ bands) of a merged scan, PNG and PDF.
rule contour:
    input:
        "results/{analysis}/scan.parquet",
    output:
        png="results/{analysis}/contour.png",
        pdf="results/{analysis}/contour.pdf",
    params:
        cl=config["settings"]["cl"],
    log:
        "logs/{analysis}/contour.log",
    localrule: True
    shell:
        "{HFPIPE} contour {input:q} --cl {params.cl} -o {output.png:q} -o {output.pdf:q} 2> {log:q}"
