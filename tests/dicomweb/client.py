"""Stores, finds and retrieves DICOM instances through DICOMweb's own client
(dicomweb-client), with instances written and read back by pydicom. Prints what it found
as JSON.

Usage: client.py < request.json, where request is
  {"base": ".../dicom-web", "token": records token, "clinician": clinician token (patient
   DW-1 on their care list), "fixtures": [paths of the CR fixtures]}
"""
import hashlib
import io
import json
import sys
import time

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DX = "1.2.840.10008.5.1.4.1.1.1.1"
AS_STORED = (("application/dicom", "*"),)


def hand_xray(study, series, number):
    """A 64x64 DX hand x-ray of patient DW-1, 12 bits in 16, explicit VR little endian."""
    ds = Dataset()
    ds.SOPClassUID = DX
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyDate = "20190312"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-DW-1"
    ds.Modality = "DX"
    ds.StudyDescription = "Left hand two views"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.PatientName = "Webb^Dora"
    ds.PatientID = "DW-1"
    ds.PatientBirthDate = "19500201"
    ds.BodyPartExamined = "HAND"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 64
    ds.Columns = 64
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.PixelData = bytes(
        b for i in range(64 * 64) for b in (((i % 64) * 64 * number) % 4096).to_bytes(2, "little")
    )
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DX
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\0" * 128
    return ds


def encoded(ds):
    """The bytes dicomweb-client sends for a data set."""
    with io.BytesIO() as out:
        pydicom.dcmwrite(out, ds)
        return out.getvalue()


def status_of(call):
    """The HTTP status a client call ends with (200 when it succeeds)."""
    try:
        call()
        return 200
    except requests.HTTPError as error:
        return error.response.status_code


def uids(items, tag):
    return sorted(item[tag]["Value"][0] for item in items)


def main():
    request = json.load(sys.stdin)
    base = request["base"]
    client = DICOMwebClient(url=base, headers={"Authorization": "Bearer " + request["token"]})
    clinician = DICOMwebClient(
        url=base, headers={"Authorization": "Bearer " + request["clinician"]}
    )
    out = {}

    study, series = generate_uid(), generate_uid()
    xrays = [hand_xray(study, series, 1), hand_xray(study, series, 2)]
    fixtures = [pydicom.dcmread(path) for path in request["fixtures"]]
    sent = xrays + fixtures

    # STOW-RS: four instances in one request, then one of them again (stored once).
    response = client.store_instances(sent)
    if "FailedSOPSequence" in response:
        sys.exit("refused: " + json.dumps(response.to_json_dict()))
    out["stored"] = sorted(item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence)
    out["sent"] = sorted(ds.SOPInstanceUID for ds in sent)
    out["failed"] = len(response.get("FailedSOPSequence", []))
    again = client.store_instances([xrays[0]])
    out["stored_again"] = [item.ReferencedSOPInstanceUID for item in again.ReferencedSOPSequence]

    # QIDO-RS.
    found = client.search_for_studies(search_filters={"PatientID": "DW-1"})
    out["studies_of_patient"] = uids(found, "0020000D")
    out["study_counts"] = [
        found[0]["00201206"]["Value"][0],
        found[0]["00201208"]["Value"][0],
    ]
    out["modalities"] = found[0]["00080061"]["Value"]
    out["patient_name"] = found[0]["00100010"]["Value"][0]["Alphabetic"]
    in_2004 = client.search_for_studies(search_filters={"StudyDate": "20040101-20041231"})
    out["studies_2004"] = uids(in_2004, "0020000D")
    out["studies_before_2000"] = client.search_for_studies(search_filters={"StudyDate": "-19991231"})
    out["by_accession"] = uids(
        client.search_for_studies(search_filters={"AccessionNumber": "ACC-DW-1"}), "0020000D"
    )
    out["cr_studies"] = uids(
        client.search_for_studies(search_filters={"ModalitiesInStudy": "CR"}), "0020000D"
    )
    out["series"] = uids(client.search_for_series(study_instance_uid=study), "0020000E")
    instances = client.search_for_instances(study_instance_uid=study, series_instance_uid=series)
    out["instances"] = uids(instances, "00080018")
    out["all_instances"] = len(client.search_for_instances())
    out["paged"] = [
        len(client.search_for_studies(limit=1, offset=offset)) for offset in range(4)
    ]

    # WADO-RS: instances as stored, read back by pydicom.
    first = xrays[0]
    back = client.retrieve_instance(study, series, first.SOPInstanceUID)
    out["pixels_back"] = back.PixelData == first.PixelData
    out["patient_back"] = str(back.PatientID)
    rg1 = fixtures[0]
    rg1_back = client.retrieve_instance(
        rg1.StudyInstanceUID, rg1.SeriesInstanceUID, rg1.SOPInstanceUID, media_types=AS_STORED
    )
    out["fixture_pixels_back"] = rg1_back.PixelData == rg1.PixelData
    out["fixture_syntax_back"] = str(rg1_back.file_meta.TransferSyntaxUID)
    # Byte for byte: each part of the multipart answer, as the client library decodes it.
    raw = {}
    for ds in sent:
        url = f"{base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        answer = client._session.get(
            url,
            headers={
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'
            },
        )
        answer.raise_for_status()
        parts = list(client._decode_multipart_message(answer, stream=False))
        raw[ds.SOPInstanceUID] = [
            hashlib.sha256(part).hexdigest() == hashlib.sha256(encoded(ds)).hexdigest()
            for part in parts
        ]
    out["byte_for_byte"] = raw
    out["explicit_le_of_jpeg2000"] = status_of(
        lambda: client.retrieve_instance(
            rg1.StudyInstanceUID,
            rg1.SeriesInstanceUID,
            rg1.SOPInstanceUID,
            media_types=(("application/dicom", "1.2.840.10008.1.2.1"),),
        )
    )
    whole_study = client.retrieve_study(study)
    out["study_instances_back"] = sorted(ds.SOPInstanceUID for ds in whole_study)
    series_back = client.retrieve_series(study, series)
    out["series_instances_back"] = len(series_back)
    metadata = client.retrieve_instance_metadata(study, series, first.SOPInstanceUID)
    out["metadata_sop"] = metadata["00080018"]["Value"][0]
    out["metadata_has_pixels"] = "7FE00010" in metadata
    out["metadata_readable"] = str(Dataset.from_json(metadata).StudyDescription)
    out["study_metadata"] = len(client.retrieve_study_metadata(study))
    # The preview exists once the instance is processed (its pixels decoded).
    deadline = time.time() + 180
    while True:
        try:
            rendered = client.retrieve_instance_rendered(
                rg1.StudyInstanceUID,
                rg1.SeriesInstanceUID,
                rg1.SOPInstanceUID,
                media_types=("image/jpeg",),
            )
            break
        except requests.HTTPError as error:
            if error.response.status_code != 404 or time.time() > deadline:
                raise
            time.sleep(0.5)
    out["rendered_jpeg"] = rendered[:3] == b"\xff\xd8\xff"

    # A clinician with DW-1 on their care list, and no relationship with the CR patients.
    out["clinician_studies_of_patient"] = uids(
        clinician.search_for_studies(search_filters={"PatientID": "DW-1"}), "0020000D"
    )
    out["clinician_all_studies"] = uids(clinician.search_for_studies(), "0020000D")
    out["clinician_cr_patient"] = clinician.search_for_studies(
        search_filters={"PatientID": str(rg1.PatientID)}
    )
    out["clinician_retrieve_cr"] = status_of(
        lambda: clinician.retrieve_instance(
            rg1.StudyInstanceUID, rg1.SeriesInstanceUID, rg1.SOPInstanceUID, media_types=AS_STORED
        )
    )
    out["clinician_metadata_cr"] = status_of(
        lambda: clinician.retrieve_study_metadata(rg1.StudyInstanceUID)
    )
    out["clinician_retrieve_own"] = status_of(
        lambda: clinician.retrieve_instance(study, series, first.SOPInstanceUID)
    )
    out["clinician_store"] = status_of(lambda: clinician.store_instances([xrays[1]]))
    out["study"] = study
    out["series_uid"] = series
    out["fixture_studies"] = sorted(ds.StudyInstanceUID for ds in fixtures)
    out["xray_uids"] = sorted(ds.SOPInstanceUID for ds in xrays)
    out["first_xray"] = first.SOPInstanceUID
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
