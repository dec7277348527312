"""The JSON API over real HTTP (civetweb): every endpoint, bad parameters and
unknown paths, against a real server on a sample store."""

import json

import pytest

from conftest import MARKUP, NARROW_TOKEN, WIDE_TOKEN


def error_of(server, path, status, token=None):
    got, headers, body = server.get(path, token)
    assert got == status, (path, got, body[:300])
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(body)["error"]


def test_catalog_matches_the_store(server, stats):
    c = server.json("/api/catalog")
    assert c["dataset_version"] == stats["fingerprint"]
    assert int(c["total_instances"]) == stats["instances"]
    want = {}
    for g in stats["groups"]:
        want[g["task"]] = want.get(g["task"], 0) + g["instances"]
    assert {t["name"]: int(t["instances"]) for t in c["tasks"]} == want
    assert server.json("/api")["grpc_port"] == server.port


def test_count_and_instances_agree_with_the_store(server, stats):
    zh = sum(g["instances"] for g in stats["groups"] if g["lang"] == "zh")
    assert int(server.json("/api/count?languages=zh")["total"]) == zh
    ids = []
    page = 0
    while True:
        r = server.json(f"/api/instances?languages=zh&page_size=4&page={page}&seed=5")
        assert r["total"] == zh and r["order"] == "shuffled"
        if not r["instances"]:
            break
        ids += [x["id"] for x in r["instances"]]
        page += 1
    assert len(ids) == len(set(ids)) == zh
    assert all(i.split("/")[2] == "zh" for i in ids)
    # Repeated and comma-separated values are the same list.
    a = server.json("/api/count?tasks=coco&tasks=vqa-v2")
    b = server.json("/api/count?tasks=coco,vqa-v2")
    assert a["total"] == b["total"]


def test_instance_by_id_and_its_images(server):
    r = server.json("/api/instances?tasks=vqa-v2&page_size=200")
    row = [x for x in r["instances"] if x["inputs"].startswith("<script>")]
    assert len(row) == 1
    whole = server.json("/api/instances/" + row[0]["id"])
    assert whole["instance"]["inputs"] == MARKUP
    assert whole["task"]["name"] == "vqa-v2" and whole["instruction_pool"]
    image = whole["instance"]["images"][0]
    status, headers, body = server.get(f"/api/images/{image['content_hash']}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert len(body) > 0 and "immutable" in headers["Cache-Control"]
    status, headers, thumb = server.get(f"/api/images/{image['content_hash']}?size=32&instance={row[0]['id']}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and thumb[:2] == b"\xff\xd8"
    status, _, _ = server.get(f"/api/images/{image['content_hash']}?size=32",
                              headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    # HEAD: headers, no body.
    status, headers, body = server.get("/api/catalog", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path,status,parameter", [
    ("/api/instances?tasks=no-such-task", 400, "tasks"),
    ("/api/count?languages=xx", 400, "languages"),
    ("/api/instances?page_size=1000000000", 400, "page_size"),
    ("/api/instances?page=x", 400, "page"),
    ("/api/instances?seed=-3", 400, "seed"),
    ("/api/instances?splits=dev", 400, "splits"),
    ("/api/instances?held_out=perhaps", 400, "held_out"),
    ("/api/instances?bogus=1", 400, "bogus"),
    ("/api/instances/not-an-id", 400, "id"),
    ("/api/instances/vqa-v2/train/en/abc", 400, "id"),
    ("/api/instances/vqa-v2/train/en/99999", 404, "id"),
    ("/api/images/nothex", 400, "hash"),
    ("/api/images/0123456789abcdef0123456789abcdef", 404, "hash"),
    ("/api/images/0123456789abcdef0123456789abcdef?size=100000", 400, "size"),
    ("/api/catalog?x=1", 400, "x"),
    ("/api/nothing", 404, None),
    ("/no/such/page", 404, None),
])
def test_bad_requests_name_the_parameter(server, path, status, parameter):
    e = error_of(server, path, status)
    assert e["status"] == status and e["parameter"] == parameter and e["message"]


def test_methods_and_too_many_parameters(server):
    status, headers, _ = server.get("/api/catalog", method="POST")
    assert status == 405 and "GET" in headers["Allow"]
    e = error_of(server, "/api/count?" + "&".join(f"tasks=coco{i}" for i in range(100)), 400)
    assert "query parameters" in e["message"]


def test_tokens_and_entitlements(token_server):
    e = error_of(token_server, "/api/catalog", 401)
    assert "bearer token" in e["message"]
    assert error_of(token_server, "/api/catalog", 401, token="not-a-known-token-at-all")["status"] == 401
    narrow = token_server.json("/api/catalog", token=NARROW_TOKEN)
    assert narrow["tasks"] and all(t["license"] == "CC-BY-4.0" for t in narrow["tasks"])
    wide = token_server.json("/api/catalog", token=WIDE_TOKEN)
    assert len(wide["tasks"]) > len(narrow["tasks"])
    assert error_of(token_server, "/api/instances?tasks=coco", 403, token=NARROW_TOKEN)["parameter"] == "tasks"
    assert error_of(token_server, "/api/instances/coco/train/en/0", 403, token=NARROW_TOKEN)["parameter"] == "id"
    coco = token_server.json("/api/instances/coco/train/en/0", token=WIDE_TOKEN)["instance"]
    h = coco["images"][0]["content_hash"]
    # An image is shown through an instance the token sees.
    assert error_of(token_server, f"/api/images/{h}", 400, token=NARROW_TOKEN)["parameter"] == "instance"
    assert error_of(token_server, f"/api/images/{h}?instance=coco/train/en/0", 403,
                    token=NARROW_TOKEN)["parameter"] == "instance"
    status, headers, _ = token_server.get(f"/api/images/{h}?instance=coco/train/en/0", token=WIDE_TOKEN)
    assert status == 200 and headers["Cache-Control"].startswith("private")
    # The page and /metrics need no token.
    assert token_server.get("/")[0] == 200
    assert token_server.get("/metrics")[0] == 200


def test_metrics_alias_and_browser_off(store, tmp_path):
    from conftest import Server
    s = Server(store, tmp_path / "off", "--no-browser")
    try:
        assert s.get("/metrics")[0] == 200
        assert s.get("/")[0] == 404 and s.get("/api/catalog")[0] == 404
    finally:
        s.stop()
