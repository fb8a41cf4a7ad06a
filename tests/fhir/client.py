"""Reads the archive through FHIR's own client (fhirclient) and checks every resource it
returns against FHIR's models (fhir.resources, R4B: DocumentReference, Patient, Bundle,
CapabilityStatement and OperationOutcome as in R4). Prints what it found as JSON.

Usage: client.py < request.json, where request is
  {"base": ".../fhir", "token": records token, "clinician": clinician token,
   "patient": patient id, "mrn": MRN, "system": the MRN's identifier system,
   "other_document": a document of a patient outside the clinician's care list,
   "new_scan": a page to file as a new document, base64}
"""
import base64
import hashlib
import json
import sys

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhirclient import server as fhir_server
from fhirclient.models.documentreference import DocumentReference as ClientDocumentReference

MODELS = {
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "DocumentReference": DocumentReference,
    "OperationOutcome": OperationOutcome,
    "Patient": Patient,
}


def validated(resource):
    """The resource, after FHIR's model for its type accepted it (raises otherwise)."""
    MODELS[resource["resourceType"]].parse_obj(resource)
    if resource["resourceType"] == "Bundle":
        for entry in resource.get("entry", []):
            validated(entry["resource"])
    return resource


def connect(base, token):
    server = fhir_server.FHIRServer(None, base_uri=base)
    server.session.headers["Authorization"] = "Bearer " + token
    return server


def search_all(server, resource_type, params):
    """Every match of a search, following the Bundle's `next` links."""
    bundle = validated(server.request_json(resource_type + "?" + params))
    found, pages = [], 0
    while True:
        pages += 1
        found += [entry["resource"] for entry in bundle.get("entry", [])]
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return found, bundle["total"], pages
        bundle = validated(server.request_json(following[0]))


def main():
    request = json.load(sys.stdin)
    server = connect(request["base"], request["token"])
    out = {}

    # The CapabilityStatement, read (and parsed) by the client itself.
    server.prepare()
    capability = validated(server.request_json("metadata"))
    out["capability"] = sorted(r["type"] for r in capability["rest"][0]["resource"])

    # The patient's documents, a page at a time, through the client's search.
    patient = request["patient"]
    search = ClientDocumentReference.where(struct={"patient": patient, "_count": "1"})
    first = search.perform(server)
    out["first_page_entries"] = len(first.entry or [])
    docs, total, pages = search_all(server, "DocumentReference", "patient=%s&_count=1" % patient)
    out["documents"] = sorted(d["id"] for d in docs)
    out["total"], out["pages"] = total, pages
    out["statuses"] = sorted(set(d["status"] for d in docs))

    def ids(params):
        found, _, _ = search_all(server, "DocumentReference", params)
        return sorted(d["id"] for d in found)

    system, mrn = request["system"], request["mrn"]
    out["by_identifier"] = ids("patient.identifier=%s|%s" % (system, mrn))
    out["clinical_notes"] = ids("patient=%s&category=clinical-note" % patient)
    out["discharge_by_loinc"] = ids("patient=%s&type=http://loinc.org|18842-5" % patient)
    out["letters"] = ids("patient=%s&type=letter" % patient)
    out["archived_since_2000"] = ids("patient=%s&category=clinical-note&date=ge2000-01-01" % patient)
    out["archived_before_2000"] = ids("patient=%s&category=clinical-note&date=lt2000" % patient)
    out["served_2019"] = ids("patient=%s&period=ge2019-01-01&period=le2019-12-31" % patient)
    out["current"] = ids("patient=%s&status=current" % patient)
    out["content"] = ids("patient=%s&_content=razorbill" % patient)
    out["content_anywhere"] = ids("_content=razorbill")
    posted = server.session.post(
        request["base"] + "/DocumentReference/_search",
        data={"patient": patient, "type": "letter"},
        headers={"Accept": "application/fhir+json"},
    )
    out["posted_search"] = sorted(
        e["resource"]["id"] for e in validated(posted.json()).get("entry", [])
    )

    # Every original, read as the DocumentReference points at it, byte for byte (its size and
    # its SHA-1 as the attachment states them).
    hashes = {}
    for doc in docs:
        attachment = doc["content"][0]["attachment"]
        data = server.session.get(attachment["url"]).content
        assert len(data) == attachment["size"], (len(data), attachment["size"])
        sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode()
        assert attachment["hash"] == sha1, (attachment.get("hash"), sha1)
        hashes[doc["id"]] = hashlib.sha256(data).hexdigest()
    out["sha256"] = hashes
    text = server.session.get(docs[0]["content"][1]["attachment"]["url"]).text
    out["text_words"] = len(text.split())

    # The patient, read and found by identifier.
    out["patient"] = validated(server.request_json("Patient/" + patient))
    found, _, _ = search_all(server, "Patient", "identifier=%s|%s" % (system, mrn))
    out["patients_by_identifier"] = [p["id"] for p in found]

    # A new document, created as FHIR writes one: the original inline, the subject by MRN,
    # the type by its LOINC code.
    new = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"identifier": {"system": system, "value": mrn}},
        "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
        "context": {"period": {"start": "2021-04-05"}},
        "content": [{"attachment": {"contentType": "image/png", "data": request["new_scan"]}}],
    }
    validated(new)
    created = server.session.post(
        request["base"] + "/DocumentReference",
        json=new,
        headers={"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"},
    )
    body = validated(created.json())
    out["created"] = {
        "status": created.status_code,
        "location": created.headers.get("Location"),
        "id": body["id"],
        "docStatus": body["docStatus"],
        "read": server.session.get(created.headers["Location"]).status_code,
    }
    again = server.session.post(request["base"] + "/DocumentReference", json=new)
    out["created_again"] = {"status": again.status_code, "id": again.json()["id"]}
    bad = dict(new, content=[{"attachment": {"contentType": "image/png", "url": "http://elsewhere/x"}}])
    refused = server.session.post(request["base"] + "/DocumentReference", json=bad)
    out["create_without_data"] = {"status": refused.status_code, "body": validated(refused.json())}
    huge = dict(new, content=[{"attachment": {
        "contentType": "image/png",
        "data": base64.b64encode(bytes(1_600_000)).decode(),
    }}])
    too_large = server.session.post(request["base"] + "/DocumentReference", json=huge)
    out["create_too_large"] = {"status": too_large.status_code, "body": validated(too_large.json())}

    # A clinician: the patient on their care list reads; another's document is not there.
    clinician = connect(request["base"], request["clinician"])
    response = clinician.session.get(
        request["base"] + "/DocumentReference/" + request["other_document"],
        headers={"Accept": "application/fhir+json"},
    )
    out["out_of_scope"] = {"status": response.status_code, "body": validated(response.json())}
    found, _, _ = search_all(clinician, "DocumentReference", "patient=%s" % patient)
    out["clinician_sees"] = len(found)
    response = clinician.session.get(
        request["base"] + "/DocumentReference?category=clinical-note",
        headers={"Accept": "application/fhir+json"},
    )
    out["no_patient"] = {"status": response.status_code, "body": validated(response.json())}
    response = clinician.session.get(request["base"] + "/Observation?patient=" + patient)
    out["unknown_type"] = {"status": response.status_code, "body": validated(response.json())}
    response = clinician.session.get(request["base"] + "/Patient/" + patient, headers={"Authorization": "Bearer nope"})
    out["bad_token"] = {"status": response.status_code, "body": validated(response.json())}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
