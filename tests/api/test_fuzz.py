"""Bad input never hurts: property tests over HTTP on both engines (DESIGN rule 7).

Hypothesis throws arbitrary JSON, NGSI-LD-shaped junk, query strings and header values at the
API and checks, for every answer:

1. the status is never 5xx (503 LdContextNotAvailable excepted: the spec prescribes it when the
   client's own @context cannot be fetched);
2. every 4xx body is ProblemDetails: ``type`` in the ETSI errors namespace, ``title``, ``detail``;
3. a failed write (>= 400), and any request to another tenant, leaves this tenant's entities
   exactly as they were (full snapshots with system attributes, before and after).

pytest-asyncio drives an ``async`` ``@given`` test example by example on the session loop, so the
examples share the session-scoped ``api`` fixture. Each test seeds a tenant of its own once.
Server errors already found are listed in ``KNOWN_SERVER_ERRORS`` (tests/api/live_server.py):
tolerated in the properties, reproduced exactly (and xfailed) in ``test_known_server_errors``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from tests.api.live_server import (
    BASE,
    JSON_CT,
    KNOWN_SERVER_ERRORS,
    KnownBug,
    Sent,
    check_response,
    known_bug_for,
    wire_headers,
)
from tests.conftest import Api

SEED_IDS = ("urn:ngsi-ld:Seed:1", "urn:ngsi-ld:Seed:2")
CTX_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CTX_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'

# Sized so the whole file runs in well under a minute on two cores, both engines included.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

# ---------------------------------------------------------------------------------------------
# strategies: one_of picks branches evenly, so repeating a branch weights it

THAI = st.text(st.characters(min_codepoint=0x0E00, max_codepoint=0x0E7F), max_size=12)
THAI_WORDS = st.sampled_from(["กรุงเทพมหานคร", "ห้องประชุม ๑", "อุณหภูมิ", "น้ำ่่่่", "เชียงใหม่"])
TEXT = st.one_of(st.text(max_size=20), THAI, THAI_WORDS, st.sampled_from(["a\x00b", "\x00"]))
BIG_INTS = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -(10**40)])
NUMBERS = st.one_of(st.integers(), BIG_INTS, st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([1e308, -1e308, 5e-324, -0.0]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
KEYS = st.one_of(
    st.sampled_from(["id", "type", "value", "object", "@context", "@id", "@type", "location",
                     "observedAt", "datasetId", "unitCode", "languageMap", "vocab", "valueList",
                     "coordinates", "scope", "createdAt", "modifiedAt", "lang", "@none"]),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(KEYS, kids, max_size=5)),
    max_leaves=25,
)


class Raw(bytes):
    """A body sent byte for byte: JSON no encoder would write, or no JSON at all."""


def deep(depth: int, opener: str, closer: str) -> Raw:
    # Deeper than orjson's limit (1024) and than the stdlib encoder's recursion could write.
    return Raw((opener * depth + "null" + closer * depth).encode())


RAW_BODIES = st.sampled_from([
    deep(1030, "[", "]"), deep(600, '{"value":', "}"), deep(1023, "[", "]"),
    deep(5000, '{"id":"urn:x:1","type":"T","a":{"type":"Property","value":', "}}"),
    Raw(b""), Raw(b" "), Raw(b"\xef\xbb\xbf{}"), Raw(b"\xff\xfe{}"), Raw(b"{"), Raw(b"[1,]"),
    Raw(b"NaN"), Raw(b"[Infinity]"), Raw(b'{"id":"urn:x:1","type":"T"} trailing'),
    Raw(b'{"a":1,"a":2}'), Raw(b'"\\ud800"'), Raw(b"\x00"), Raw(b'{"\xc3\x28":1}'),
    Raw(b'{"id":"urn:x:1","type":"T","n":{"type":"Property","value":1e999}}'),
    Raw(b'{"id":"urn:x:1","type":"T","n":{"type":"Property","value":"' + b"x" * 300_000 + b'"}}'),
])
VALID_URIS = st.sampled_from([*SEED_IDS, "urn:ngsi-ld:Fuzz:1", "urn:ngsi-ld:Fuzz:ห้อง",
                              "http://x/y", "urn:ngsi-ld:Fuzz:a\x00"])
URIS = st.one_of(VALID_URIS, VALID_URIS, TEXT,
                 st.sampled_from(["urn:", "not a uri", "", "urn:ngsi-ld:" + "x" * 3000]))
ATTR_TYPES = st.sampled_from(["Property", "Relationship", "GeoProperty", "LanguageProperty",
                              "VocabProperty", "ListProperty", "ListRelationship", "property"])
GEO_TYPES = st.sampled_from(["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString",
                             "MultiPolygon", "GeometryCollection", "Feature", "point"])
COORDS = st.recursive(NUMBERS | st.none() | TEXT, lambda kids: st.lists(kids, max_size=5),
                      max_leaves=12)
GEOMETRIES = st.fixed_dictionaries(
    {"type": GEO_TYPES | GEO_TYPES | JSON_VALUES},
    optional={"coordinates": COORDS, "geometries": st.lists(JSON_VALUES, max_size=2)},
)
DATES = st.one_of(st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-45T99:99:99Z", "0000-00-00",
                                   "2024-01-01T00:00:00+07:00", "-0001-01-01T00:00:00Z"]), TEXT)
ATTRIBUTES = st.fixed_dictionaries(
    {"type": ATTR_TYPES | ATTR_TYPES | JSON_VALUES},
    optional={
        "value": JSON_VALUES | GEOMETRIES, "object": URIS | JSON_VALUES,
        "languageMap": st.dictionaries(TEXT, TEXT | JSON_VALUES, max_size=3),
        "vocab": TEXT | JSON_VALUES, "valueList": st.lists(JSON_VALUES, max_size=3),
        "observedAt": DATES, "datasetId": URIS, "unitCode": TEXT | JSON_VALUES,
        "createdAt": DATES, "sub": JSON_VALUES,
    },
)
ATTR_NAMES = st.one_of(st.sampled_from(["temperature", "location", "name", "Seed", "@context",
                                        "id", "type", "scope", "createdAt", "ห้อง"]), TEXT)
ATTR_MAPS = st.dictionaries(
    ATTR_NAMES, ATTRIBUTES | ATTRIBUTES | st.lists(ATTRIBUTES, max_size=2) | JSON_VALUES,
    max_size=4,
)


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    """NGSI-LD-shaped entities: mostly plausible, with any member possibly wrong."""
    body: dict[str, Any] = draw(ATTR_MAPS)
    if draw(st.integers(0, 9)) < 8:
        body["id"] = draw(URIS | URIS | JSON_VALUES)
    if draw(st.integers(0, 9)) < 8:
        body["type"] = draw(st.sampled_from(["Seed", "Fuzz", "ห้อง"]) | TEXT
                            | st.lists(TEXT, max_size=3) | JSON_VALUES)
    if draw(st.booleans()):
        body["scope"] = draw(TEXT | st.lists(TEXT, max_size=3) | JSON_VALUES)
    return body


ENTITY_BODIES = st.one_of(entities(), st.lists(entities(), max_size=3))
ANY_BODY = st.one_of(JSON_VALUES, ENTITY_BODIES, ENTITY_BODIES, RAW_BODIES)
WRITES = [
    ("POST", "/entities"), ("PUT", "/entities/{eid}"), ("PATCH", "/entities/{eid}"),
    ("POST", "/entities/{eid}/attrs"), ("PATCH", "/entities/{eid}/attrs"),
    ("PATCH", "/entities/{eid}/attrs/{attr}"), ("PUT", "/entities/{eid}/attrs/{attr}"),
    ("POST", "/entityOperations/create"), ("POST", "/entityOperations/upsert"),
    ("POST", "/entityOperations/update"), ("POST", "/entityOperations/merge"),
    ("POST", "/entityOperations/delete"), ("POST", "/entityOperations/query"),
    ("POST", "/jsonldContexts"), ("DELETE", "/entities/{eid}/attrs/{attr}"),
    ("DELETE", "/jsonldContexts/{eid}"),
]

# ---------------------------------------------------------------------------------------------
# a tenant with known contents, and snapshots of it


class Tenant:
    """One seeded tenant; ``last`` is its latest snapshot."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.name = f"fz{uuid.uuid4().hex[:12]}"
        self.last: list[Any] = []

    async def seed(self) -> None:
        seeds = [
            {"id": eid, "type": "Seed",
             "temperature": {"type": "Property", "value": 20 + n, "unitCode": "CEL"},
             "name": {"type": "Property", "value": f"ต้นทาง {n}"},
             "location": {"type": "GeoProperty",
                          "value": {"type": "Point", "coordinates": [100.5, 13.7 + n / 100]}}}
            for n, eid in enumerate(SEED_IDS)
        ]
        r = await self.api.post(f"{BASE}/entityOperations/create", json=seeds,
                                headers={"NGSILD-Tenant": self.name})
        assert r.status_code == 201, r.text
        self.last = await self.snapshot()

    async def snapshot(self) -> list[Any]:
        r = await self.api.get(
            f"{BASE}/entities",
            params={"idPattern": ".*", "limit": "1000", "options": "sysAttrs"},
            headers={"NGSILD-Tenant": self.name},
        )
        assert r.status_code == 200, r.text
        return sorted(r.json(), key=lambda e: str(e.get("id")))

    async def send(self, sent: Sent, *, ours: bool = True) -> httpx.Response:
        """Send one request and check the properties; ``ours``: it addresses this tenant."""
        response = await self.api.client.request(
            sent.method, sent.url, content=sent.content, headers=wire_headers(sent.headers)
        )
        check_response(self.api.engine, sent, response)
        # Shown by --hypothesis-show-statistics: how many requests got past validation.
        if currently_in_test_context():
            event(f"{sent.method} -> {response.status_code}")
        if sent.method == "GET" or response.status_code >= 400 or not ours:
            after = await self.snapshot()
            assert after == self.last, f"data changed by:\n{sent.describe()}\n-> {response.text}"
        else:
            self.last = await self.snapshot()
        return response


_TENANTS: dict[tuple[str, str], Tenant] = {}


async def tenant_for(api: Api, test: str) -> Tenant:
    """One tenant per (engine, test), seeded on the test's first example."""
    if (api.engine, test) not in _TENANTS:
        tenant = Tenant(api)
        await tenant.seed()
        _TENANTS[api.engine, test] = tenant
    return _TENANTS[api.engine, test]


def dump(body: Any) -> bytes:
    if isinstance(body, Raw):
        return bytes(body)
    # The stdlib encoder: orjson refuses ints beyond 64 bits, and the server must see those.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def segment(text: str) -> str:
    """A path segment carrying any text at all; the server must cope with what it decodes."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=":")


# ---------------------------------------------------------------------------------------------
# the properties


@FUZZ
@given(write=st.sampled_from(WRITES), body=ANY_BODY, eid=URIS, attr=ATTR_NAMES,
       ctype=st.sampled_from([JSON_CT, JSON_CT, "application/ld+json",
                              "application/merge-patch+json"]))
async def test_arbitrary_bodies(api: Api, write: tuple[str, str], body: Any, eid: str,
                                attr: str, ctype: str) -> None:
    tenant = await tenant_for(api, "bodies")
    if ctype == "application/ld+json" and isinstance(body, dict) and "@context" not in body:
        body = {**body, "@context": CTX_URL}
    method, template = write
    url = BASE + template.format(eid=segment(eid), attr=segment(attr))
    content = None if method == "DELETE" else dump(body)
    await tenant.send(Sent(method, url, content, {"NGSILD-Tenant": tenant.name,
                                                  "Content-Type": ctype}))


PLAUSIBLE_ATTRS = st.dictionaries(
    st.sampled_from(["temperature", "name", "ห้อง", "spec", "location", "refSite", "label"]),
    st.one_of(
        st.fixed_dictionaries({"type": st.just("Property"), "value": JSON_VALUES},
                              optional={"observedAt": DATES, "unitCode": TEXT}),
        st.fixed_dictionaries({"type": st.just("Relationship"), "object": URIS}),
        st.fixed_dictionaries({"type": st.just("GeoProperty"), "value": GEOMETRIES}),
        st.fixed_dictionaries({"type": st.just("LanguageProperty"),
                               "languageMap": st.dictionaries(st.sampled_from(
                                   ["th", "en", "@none", "th-TH", "x"]), TEXT, max_size=3)}),
    ),
    min_size=1, max_size=4,
)
VIEWS = st.sampled_from(["", "?options=keyValues", "?options=sysAttrs", "?format=simplified",
                         "?options=concise", "?lang=th", "?attrs=temperature,spec", "?pick=ห้อง"])


@settings(FUZZ, max_examples=50)  # five requests per example
@given(attrs=PLAUSIBLE_ATTRS, view=VIEWS,
       accept=st.sampled_from([JSON_CT, "application/ld+json", "application/geo+json"]))
async def test_plausible_entities_round_trip(api: Api, attrs: dict[str, Any], view: str,
                                             accept: str) -> None:
    """Entities that pass or nearly pass validation: stored values must render in every form."""
    tenant = await tenant_for(api, "plausible")
    eid = f"urn:ngsi-ld:Fuzz:{uuid.uuid4().hex[:8]}"
    headers = {"NGSILD-Tenant": tenant.name, "Content-Type": JSON_CT}
    created = await tenant.send(
        Sent("POST", f"{BASE}/entities", dump({"id": eid, "type": "Fuzz", **attrs}), headers))
    url = f"{BASE}/entities/{segment(eid)}"
    await tenant.send(Sent("GET", url + view, None, {**headers, "Accept": accept}))
    await tenant.send(Sent("GET", f"{BASE}/entities?type=Fuzz&limit=5{view.replace('?', '&')}",
                           None, {**headers, "Accept": accept}))
    if created.status_code == 201:
        await tenant.send(Sent("PATCH", url + "/attrs", dump(attrs), headers))
        await tenant.send(Sent("DELETE", url, None, headers))


Q_TOKENS = st.sampled_from([
    "temperature", "name", "location", "a.b", "a[b]", "a[b.c]", "==", "!=", ">", "<", ">=", "<=",
    "~=", "!~=", ";", "|", "(", ")", "..", '"', "'", "20", "-1", "1e999", "99999999999999999999",
    "2024-01-01T00:00:00Z", "true", "null", "ห้อง", "\\", "%", "*", ".*", ",", " ", "@", ":",
    "\x00",
])
PARAM_VALUES = st.one_of(st.lists(Q_TOKENS, max_size=8).map("".join), TEXT,
                         st.integers().map(str), BIG_INTS.map(str))
REGEXES = st.one_of(
    st.sampled_from(["(?P<n>Seed)", "\\Z", "(?<=a)b", "(?i)seed", "[[:alpha:]]+", "a{2,1}",
                     "(a+)+$", "\\d", "\\", "[", "(?#c)x", "\\p{L}", "(?P=n)", "\\N{DIGIT ONE}",
                     "^urn:.*Seed:[12]$", "\x00", "ห้อง.*"]),
    TEXT,
)
GEO_PARAMS = st.fixed_dictionaries({
    "geometry": st.sampled_from(["Point", "Polygon", "LineString", "MultiPolygon", "Box"]) | TEXT,
    "georel": st.sampled_from(["near;maxDistance==1000", "near;minDistance==-5", "within",
                               "intersects", "contains", "disjoint", "overlaps", "equals",
                               "near;maxDistance==1e999", "near"]) | TEXT,
    "coordinates": COORDS.map(json.dumps) | TEXT,
}, optional={"geoproperty": ATTR_NAMES})
QUERY_KEYS = st.sampled_from(["q", "type", "attrs", "id", "limit", "offset", "options", "scopeQ",
                              "count", "format", "pick", "omit", "lang", "local", "csf",
                              "datasetId", "details", "kind"])
QUERIES = st.tuples(st.dictionaries(QUERY_KEYS | TEXT, PARAM_VALUES, max_size=5),
                    st.none() | GEO_PARAMS, st.none() | REGEXES)
READS = ["/entities", "/entities", "/entities/{eid}", "/types", "/types/{attr}", "/attributes",
         "/attributes/{attr}", "/jsonldContexts", "/jsonldContexts/{eid}"]


@FUZZ
@given(query=QUERIES, read=st.sampled_from(READS), eid=URIS, attr=ATTR_NAMES)
async def test_arbitrary_query_strings(api: Api, query: tuple[dict[str, str], Any, Any],
                                       read: str, eid: str, attr: str) -> None:
    tenant = await tenant_for(api, "queries")
    params, geo, pattern = query
    params = {**params, **(geo or {})}
    if pattern is not None:
        params["idPattern"] = pattern
    path = BASE + read.format(eid=segment(eid), attr=segment(attr))
    query_string = urlencode(params, quote_via=quote, encoding="utf-8", errors="surrogatepass")
    url = f"{path}?{query_string}"
    await tenant.send(Sent("GET", url, None, {"NGSILD-Tenant": tenant.name}))


RAW_QUERIES = st.sampled_from([
    "q=%ZZ", "q=%C3%28", "type=%FF%FE", "idPattern=%E0%B8", "limit=%00", "q=a%00b",
    "type=Seed&limit=-1", "type=Seed&limit=1001", "type=Seed&offset=99999999999999999999",
    "type=Seed&limit=99999999999999999999", "type=Seed&limit=1e3", "type=Seed&count=maybe",
    "type=Seed&options=keyValues,sysAttrs,nope", "type=Seed&format=x", "type=&q=",
    "type=Seed&pick=id&omit=id", "type=Seed&attrs=,,", "type=Seed&type=Other",
    "q=" + "(" * 3000, "type=" + "a" * 20000, "type=Seed&lang=%E0", "type=Seed&q=%00",
])


@FUZZ
@given(raw=RAW_QUERIES)
async def test_malformed_query_strings(api: Api, raw: str) -> None:
    tenant = await tenant_for(api, "raw")
    await tenant.send(Sent("GET", f"{BASE}/entities?{raw}", None, {"NGSILD-Tenant": tenant.name}))


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "application/ld+json", "application/merge-patch+json",
                     "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
                     "application/json+ld", "multipart/form-data; boundary=x", ";", "",
                     "application/json; charset=tis-620", "*/*"]),
    HEADER_TEXT,
)
ACCEPTS = st.one_of(
    st.sampled_from(["application/json", "application/ld+json", "application/geo+json",
                     "*/*;q=0", "application/*;q=abc", "text/html", ",,,", "*/*;q=1e999",
                     "application/json;q=-1, application/ld+json;q=0.5", ""]),
    HEADER_TEXT,
)
LINKS = st.one_of(
    st.sampled_from([
        f"<{CTX_URL}>; {CTX_REL}", f"<>; {CTX_REL}", f"{CTX_URL}; {CTX_REL}",
        # Nothing listens on port 9 here: the fetch fails at once, without the internet.
        f"<http://127.0.0.1:9/ctx.jsonld>; {CTX_REL}", "<urn:x>; rel=other", "<<>>;;,,", "",
        f"<https://uri.etsi.org/ngsi-ld/v1.7/ngsi-ld-core-context.jsonld>; {CTX_REL}",
        f"<ftp://x/y>; {CTX_REL}", f"<file:///etc/passwd>; {CTX_REL}",
    ]),
    HEADER_TEXT,
)
TENANTS = st.one_of(st.sampled_from(["", "-", "_", "a" * 64, "a" * 65, "ไทย", "a b", "../x",
                                     "default", "NGSI", "t'1"]), HEADER_TEXT)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PATCH"]), ctype=CONTENT_TYPES, accept=ACCEPTS,
       link=LINKS, tenant_header=st.none() | TENANTS, body=st.none() | ENTITY_BODIES)
async def test_arbitrary_headers(api: Api, method: str, ctype: str, accept: str, link: str,
                                 tenant_header: str | None, body: Any) -> None:
    tenant = await tenant_for(api, "headers")
    headers = {"Content-Type": ctype, "Accept": accept, "Link": link,
               "NGSILD-Tenant": tenant.name if tenant_header is None else tenant_header}
    url = {"GET": f"{BASE}/entities?type=Seed", "POST": f"{BASE}/entities",
           "PATCH": f"{BASE}/entities/{SEED_IDS[0]}/attrs"}[method]
    sent = Sent(method, url, None if body is None else dump(body), headers)
    await tenant.send(sent, ours=tenant_header is None)


# ---------------------------------------------------------------------------------------------
# every server error found so far, reproduced exactly


@pytest.mark.parametrize("bug", KNOWN_SERVER_ERRORS, ids=lambda b: b.name)
async def test_known_server_errors(api: Api, bug: KnownBug) -> None:
    if api.engine not in bug.engines:
        pytest.skip(f"{bug.name} is a {', '.join(bug.engines)} bug")
    tenant = await tenant_for(api, "known")
    sent = bug.request(tenant.name)
    assert known_bug_for(api.engine, sent) is bug, "a bug's matcher must recognise its own case"
    response = await tenant.send(sent)  # the data must stay intact even when the server fails
    if response.status_code >= 500:
        pytest.xfail(f"{bug.name}: {bug.reason}")
    # Like a strict xfail: once fixed, the exemption must go, or it would hide a regression.
    pytest.fail(f"{bug.name} is fixed ({response.status_code}): remove it from "
                "KNOWN_SERVER_ERRORS in tests/api/live_server.py")
