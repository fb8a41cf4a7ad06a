#!/usr/bin/env bash
# Installs what chartvault needs to build and test on Debian 12: libtesseract and its data
# (English, orientation, and Spanish for the test of a second language), clang for the
# bindings, fonts for generated test scans, the tesseract command line (the OCR benchmark's
# baseline and the CER reference in tests), poppler-utils (pdftotext and pdfinfo read
# the productions back in tests), curl (a TLS client in tests) and Prometheus's Python client
# (its parser reads /metrics in tests), and python3-venv (the tests' peers from PyPI, the HL7
# toolkit hl7apy and FHIR's fhirclient and fhir.resources, are installed into a virtual
# environment by scripts/test.sh), and PostgreSQL (the store's tests run on a throwaway
# cluster they make with initdb and pg_ctl, not the system's own).
# Idempotent: does nothing when everything is present.
set -euo pipefail

packages=(
  libtesseract-dev libleptonica-dev tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd
  tesseract-ocr-spa
  clang libclang-dev pkg-config fonts-dejavu-core poppler-utils
  curl python3-prometheus-client python3-venv
  postgresql
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (install the Rust toolchain with rustup)" >&2
  exit 1
fi
