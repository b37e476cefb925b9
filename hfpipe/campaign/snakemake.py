"""A campaign as a Snakemake config: fetch and pair the inputs here, scan in the workflow.

``hfpipe campaign CONFIG.yaml --snakemake-config config/config.yaml`` fetches, unpacks and
pairs every analysis (nothing is computed) and writes the config ``workflow/Snakefile``
reads (the shape of config/config.yaml, see docs/snakemake.md): one entry per
(workspace, patchset) pair with local paths, the campaign's settings and chunk size.
"""

from __future__ import annotations

from hfpipe.campaign.config import Campaign
from hfpipe.campaign.run import resolve

__all__ = ["snakemake_config"]


def snakemake_config(campaign: Campaign) -> dict:
    """The Snakemake config of ``campaign`` (downloads what is not cached yet)."""
    analyses = []
    for analysis in campaign.analyses:
        for item in resolve(analysis, campaign.cache):
            analyses.append(
                {
                    "name": item.name,
                    "workspace": str(item.pair.workspace),
                    "patchset": str(item.pair.patchset),
                    "points": list(item.points) if item.points is not None else "all",
                }
            )
    return {
        "analyses": analyses,
        "settings": {"calctype": "asymptotics", **campaign.settings},
        "chunk_size": campaign.chunk_size,
    }
