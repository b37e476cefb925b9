"""Campaigns: many published analyses fetched, paired, scanned and summarised in one go.

Data flow: :mod:`~hfpipe.campaign.fetch` (download with cache, checksum, resume) →
:mod:`~hfpipe.campaign.archive` (unpack, pair workspaces and patchsets by digest) →
:mod:`~hfpipe.campaign.run` (scan, contour, summary; skips what is up to date).
:mod:`~hfpipe.campaign.config` reads the campaign file.
"""

from hfpipe.campaign.archive import Pair, find_pairs, unpack
from hfpipe.campaign.config import AnalysisSource, Campaign, load_campaign
from hfpipe.campaign.fetch import fetch, is_url
from hfpipe.campaign.run import SUMMARY_COLUMNS, run_campaign
from hfpipe.campaign.snakemake import snakemake_config

__all__ = [
    "SUMMARY_COLUMNS",
    "AnalysisSource",
    "Campaign",
    "Pair",
    "fetch",
    "find_pairs",
    "is_url",
    "load_campaign",
    "run_campaign",
    "snakemake_config",
    "unpack",
]
