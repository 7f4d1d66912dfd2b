"""The built-in catalogue and city extensions (pure parts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nakhon.broker.jsonld import DEFAULT_VOCAB
from nakhon.core.errors import BadRequestData
from nakhon.domains.catalogue import (
    apply_extension,
    builtin_domains,
    check_lang,
    domains_of_type,
    type_iris,
)

THAI_NAMES = {
    "environment": "สิ่งแวดล้อมอัจฉริยะ",
    "economy": "เศรษฐกิจอัจฉริยะ",
    "mobility": "การเดินทางและขนส่งอัจฉริยะ",
    "energy": "พลังงานอัจฉริยะ",
    "people": "พลเมืองอัจฉริยะ",
    "living": "การดำรงชีวิตอัจฉริยะ",
    "governance": "การบริหารภาครัฐอัจฉริยะ",
}


def test_seven_domains_with_thai_and_english_names() -> None:
    domains = builtin_domains()
    assert [d.id for d in domains] == list(THAI_NAMES)
    for d in domains:
        assert d.name["th"] == THAI_NAMES[d.id]
        assert d.name["en"] == "Smart " + d.id.capitalize()
        assert d.description["th"] and d.description["en"]
        assert d.types, d.id


def test_the_issue_types_are_mapped() -> None:
    domains = list(builtin_domains())
    expected = {
        "AirQualityObserved": "environment",
        "NoiseLevelObserved": "environment",
        "WaterObserved": "environment",
        "FloodMonitoring": "environment",
        "WeatherObserved": "environment",
        "WasteContainer": "environment",
        "TrafficFlowObserved": "mobility",
        "ParkingSpot": "mobility",
        "OffStreetParking": "mobility",
        "EVChargingStation": "mobility",
        "Streetlight": "energy",
        "ThreePhaseAcMeasurement": "energy",
        "AccessPoint": "people",
        "CashlessPayment": "economy",
        "EService": "governance",
        "KeyPerformanceIndicator": "governance",
        "Alert": "living",
    }
    for type_name, domain in expected.items():
        assert domains_of_type(domains, type_name) == [domain], type_name
    sdm = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    assert domains_of_type(domains, sdm) == ["environment"]
    assert domains_of_type(domains, DEFAULT_VOCAB + "Streetlight") == ["energy"]
    assert domains_of_type(domains, "Unknown") == []


def test_type_iris_cover_both_vocabularies() -> None:
    assert type_iris("ParkingSpot") == (
        DEFAULT_VOCAB + "ParkingSpot",
        "https://smartdatamodels.org/dataModel.Parking/ParkingSpot",
    )
    assert type_iris("CashlessPayment") == (DEFAULT_VOCAB + "CashlessPayment",)
    assert type_iris("Bus") == (DEFAULT_VOCAB + "Bus",)


def test_sdm_iris_agree_with_the_shipped_sdm_contexts(shared_dir: Path) -> None:
    contexts = list((shared_dir / "data" / "sdm").glob("*/context.jsonld"))
    if not contexts:
        pytest.skip("shared Smart Data Models not present")
    terms: dict[str, str] = {}
    for path in contexts:
        for term, iri in json.loads(path.read_text())["@context"].items():
            if isinstance(iri, str):
                terms[term] = iri
    checked = 0
    for domain in builtin_domains():
        for entry in domain.types:
            if entry.sdm and entry.type in terms:
                assert entry.sdm == terms[entry.type], entry.type
                checked += 1
    assert checked >= 10


def test_city_extension_adds_hides_and_annotates() -> None:
    ext = {
        "added": {
            "mobility": {"Songthaew": {"name": {"th": "รถสองแถว", "en": "Songthaew"}}},
            "energy": {"Streetlight": {"iri": "https://city.example/ns/Lamp"}},
        },
        "hidden": {"environment": ["CarbonFootprint"]},
    }
    domains = apply_extension(builtin_domains(), ext)
    assert domains_of_type(domains, "Songthaew") == ["mobility"]
    assert domains_of_type(domains, "https://city.example/ns/Lamp") == ["energy"]
    assert domains_of_type(domains, "CarbonFootprint") == []
    song = next(t for d in domains for t in d.types if t.type == "Songthaew")
    assert not song.builtin and song.name["th"] == "รถสองแถว"
    # The built-in catalogue itself is untouched.
    assert domains_of_type(list(builtin_domains()), "CarbonFootprint") == ["environment"]


def test_lang_parameter() -> None:
    assert check_lang(None) is None and check_lang("th") == "th"
    with pytest.raises(BadRequestData):
        check_lang("fr")
