"""docs/reference.md is generated from crds/ (scripts/gen-reference.py): regenerating it must
give the committed file, so the reference cannot drift from the CRDs."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_reference_matches_the_crds():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gen-reference.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_reference_lists_every_spec_field():
    text = (REPO / "docs" / "reference.md").read_text()
    for field in ["spec.bindings", "spec.remoteIPRanges", "spec.ipRestrictionMode",
                  "spec.limits.maxMessageSize", "spec.forwarding.smarthosts", "spec.extendedRights",
                  "spec.sendAs", "spec.domainName", "spec.domainType", "status.policyVersion"]:
        assert f"`{field}`" in text, field
