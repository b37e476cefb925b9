"""hfpipe.spec.digests: workspace digests are pyhf's, and a patchset made for another
workspace is refused in one line.
"""

from __future__ import annotations

import pyhf
import pytest
from spec_helpers import BASE, assert_one_line, base, patchset_doc

from hfpipe.errors import DigestMismatch
from hfpipe.spec import load_patchset, verify_patchset, workspace_digest

# pyhf 0.7.6 validates with jsonschema's deprecated RefResolver
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated")


def test_digest_is_pyhfs():
    """pyhf hashes json.dumps(sort_keys=True, ensure_ascii=False) with default separators:
    non-ASCII names and int-versus-float both matter."""
    ws = base()
    ws["channels"][0]["samples"][0]["name"] = "sïgnal"
    assert workspace_digest(ws) == pyhf.utils.digest(ws)
    assert workspace_digest(ws, "md5") == pyhf.utils.digest(ws, "md5")
    ws["observations"][1]["data"] = [98.0]
    assert workspace_digest(ws) == pyhf.utils.digest(ws) != workspace_digest(base())


def test_digest_mismatch():
    ps = load_patchset(patchset_doc(), name="ps.json")
    ws = base()
    ws["observations"][1]["data"] = [99]
    with pytest.raises(DigestMismatch) as info:
        verify_patchset(ps, ws)
    assert_one_line(
        info.value,
        "ps.json",
        "metadata.digests.sha256",
        f"patchset was made for workspace sha256:{workspace_digest(BASE)[:16]}… but this workspace is sha256:",
    )
