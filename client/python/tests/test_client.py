import json

import grpc
import numpy as np
import pytest

import m3serve
from conftest import BIN, run


def test_catalog_and_count_match_the_cpp_cli(server):
    client = m3serve.Client(server.target)
    cli = json.loads(run(BIN / "m3serve-client", "catalog", "--target", server.target, "--json").stdout)
    py = client.catalog()
    for key in ("dataset_version", "total_instances", "unique_images", "languages", "splits", "tasks", "groups"):
        assert py[key] == cli[key], key
    cli_count = json.loads(run(BIN / "m3serve-client", "count", "--target", server.target, "--tasks", "vqa-v2",
                               "--languages", "zh,fr", "--json").stdout)
    assert client.count(tasks=["vqa-v2"], languages=["zh", "fr"]) == cli_count
    assert cli_count["total"] > 0


def test_results_are_typed_and_still_answer_dict_access_with_a_warning(server):
    client = m3serve.Client(server.target)
    cat = client.catalog()
    assert isinstance(cat, m3serve.Catalog) and isinstance(cat.tasks[0], m3serve.TaskInfo)
    assert cat.total_instances == sum(g.instances for g in cat.counts) > 0
    vqa = next(t for t in cat.tasks if t.name == "vqa-v2")
    assert (vqa.license, vqa.license_text, vqa.default_language) == ("CC-BY-4.0", "CC-BY 4.0", "en")
    count = client.count(tasks=["vqa-v2"])
    assert isinstance(count, m3serve.CountResult) and isinstance(count.groups[0], m3serve.GroupCount)
    assert count.total == vqa.instances == sum(g.instances for g in count.groups)
    with pytest.warns(DeprecationWarning, match="dict access goes in the next release"):
        assert count["total"] == count.total
    with pytest.warns(DeprecationWarning):
        assert cat["groups"][0]["lang"] == cat.counts[0].language
    assert "total" in count and count.get("nothing", 5) == 5
    assert count == count.to_dict() and count == client.count(tasks=["vqa-v2"])


def test_licenses_are_spdx_ids_and_every_spelling_selects_the_same(server):
    client = m3serve.Client(server.target)
    vqa = next(t for t in client.catalog().tasks if t.name == "vqa-v2")
    assert vqa.license == "CC-BY-4.0" and vqa.license_text == "CC-BY 4.0"
    by_id = client.count(licenses=["CC-BY-4.0"])
    assert by_id.total > 0
    for spelling in ("CC BY 4.0", "cc-by 4.0", "CC By 4.0"):
        assert client.count(licenses=[spelling]) == by_id, spelling
    with pytest.raises(m3serve.M3ServeError) as e:
        client.count(licenses=["CC BY 5.0"])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "known: " in e.value.details
    assert "CC-BY-4.0" in e.value.details


def test_held_out_tasks_are_excluded_or_selected_alone(server):
    client = m3serve.Client(server.target)
    catalog = client.catalog()
    held = {t.name for t in catalog.tasks if t.held_out}
    per_task = {}
    for g in catalog.counts:
        per_task[g.task] = per_task.get(g.task, 0) + g.instances
    assert held and set(per_task) - held  # the sample has both kinds
    without = client.count(held_out="exclude")
    only = client.count(held_out="only")
    assert {g.task for g in without.groups} == set(per_task) - held
    assert {g.task for g in only.groups} == held & set(per_task)
    assert without.total + only.total == catalog.total_instances
    streamed = [x.task for b in client.stream(held_out="exclude", images="none", batch_size=64) for x in b.instances]
    assert len(streamed) == without.total and not held & set(streamed)
    cli = json.loads(run(BIN / "m3serve-client", "count", "--target", server.target, "--held-out", "only",
                         "--json").stdout)
    assert cli == only
    with pytest.raises(ValueError, match="held_out must be 'exclude', 'only' or None"):
        client.count(held_out="yes")


def test_eval_guard_leaves_out_exactly_the_instances_sharing_an_evaluation_image(server):
    client = m3serve.Client(server.target)
    # Brute force over the stream itself: every instance with its images' content hashes.
    everything = [x for b in client.stream(images="encoded", batch_size=64) for x in b.instances]
    eval_images = {i.content_hash for x in everything if x.split in ("validation", "test") for i in x.images}
    kept = {x.id for x in everything if x.split == "train" and not {i.content_hash for i in x.images} & eval_images}
    left_out = [x for x in everything if x.split == "train" and x.id not in kept]
    assert kept and left_out  # the sample shares images across splits, as M3IT does

    count = client.count(splits=["train"], exclude_eval_images=True)
    assert count.total == len(kept)
    assert count.eval_set == "test+validation of every task"
    losses = {}
    for x in left_out:
        losses[x.task] = losses.get(x.task, 0) + 1
    assert count.eval_excluded_by_task == losses and count.eval_excluded == len(left_out)
    cli = json.loads(run(BIN / "m3serve-client", "count", "--target", server.target, "--splits", "train",
                         "--exclude-eval-images", "--json").stdout)
    assert cli == count

    streamed = [x.id for shard in range(3)
                for b in client.stream(splits=["train"], exclude_eval_images=True, shard=(shard, 3), shuffle=True,
                                       seed=5, images="none") for x in b.instances]
    assert sorted(streamed) == sorted(kept)

    assert [x.id for x in client.get([min(kept)], images="none", exclude_eval_images=True)] == [min(kept)]
    with pytest.raises(m3serve.M3ServeError) as e:
        client.get([left_out[0].id], images="none", exclude_eval_images=True)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert left_out[0].id in e.value.details and "shares an image with the evaluation set" in e.value.details

    with pytest.raises(m3serve.M3ServeError) as e:
        client.count(exclude_eval_images=True, eval_splits=["dev"])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "selection.eval_splits: unknown split 'dev' (known: test, train, validation)" in e.value.details
    with pytest.raises(m3serve.M3ServeError) as e:
        client.count(exclude_eval_images=True, eval_tasks=["no-such-task"])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "known: " in e.value.details


def test_attribution_counts_equal_count_and_render_for_a_model_card(server):
    client = m3serve.Client(server.target)
    count = client.count(splits=["train"], exclude_eval_images=True)
    a = client.attribution(splits=["train"], exclude_eval_images=True, format="markdown")
    assert isinstance(a, m3serve.Attribution)
    assert a.instances == count.total == sum(s.instances for s in a.sources) == a.samples
    per_task = {}
    for g in count.groups:
        per_task[g.task] = per_task.get(g.task, 0) + g.instances
    for s in a.sources:
        assert s.instances == sum(per_task[t] for t in s.tasks), s.source_dataset
        assert 0 < s.images and s.commercial_use in ("yes", "no", "unknown")
    assert a.eval_set == "test+validation of every task"
    assert a.report.startswith("## Training data attribution")
    assert "| Source dataset |" in a.report
    as_json = json.loads(client.attribution(splits=["train"], exclude_eval_images=True, format="json").report)
    assert as_json["instances"] == a.instances
    assert [s["source_dataset"] for s in as_json["sources"]] == [s.source_dataset for s in a.sources]
    # A mixture's samples per source are its components' samples.
    mixed = client.attribution(weights={"coco": 2, "*": 1}, epoch_size=500)
    plan = client.plan(weights={"coco": 2, "*": 1}, epoch_size=500)
    coco = next(s for s in mixed.sources if "coco" in s.tasks)
    assert coco.samples == next(c.samples for c in plan.components if c.key == "coco")
    assert mixed.samples == 500
    cli = run(BIN / "m3serve-client", "attribution", "--target", server.target, "--format", "text").stdout
    assert cli.startswith("attribution of dataset version")
    with pytest.raises(ValueError, match="format must be one of"):
        client.attribution(format="pdf")


def test_decoded_arrays_equal_the_cpp_clients_bytes(server, tmp_path):
    ids = ["coco/train/en/0", "gqa/validation/en/1", "vist/train/en/0"]
    run(BIN / "m3serve-client", "get", "--target", server.target, *ids, "--images", "decoded",
        "--width", "64", "--height", "48", "--resize", "fit", "--dump", tmp_path)
    got = m3serve.Client(server.target).get(ids, images="decoded", size=(64, 48), resize="fit")
    assert [x.id for x in got] == ids
    for x in got:
        for k, img in enumerate(x.images):
            assert img.array.shape == (48, 64, 3) and img.array.dtype == np.uint8
            assert not img.array.flags.writeable  # a view over the received bytes
            ppm = (tmp_path / f"{x.id.replace('/', '_')}_{k}.ppm").read_bytes()
            header_end = ppm.index(b"255\n") + 4
            assert ppm[:header_end] == b"P6\n64 48\n255\n"
            assert img.array.tobytes() == ppm[header_end:]
    assert len(got[2].images) == 5  # vist: five images in order


def test_encoded_images_are_the_stored_bytes(server):
    (x,) = m3serve.Client(server.target).get(["gqa/train/en/0"], images="encoded")
    img = x.images[0]
    assert img.format == "png" and img.data.startswith(b"\x89PNG") and img.array is None


def test_stream_shards_and_resume_token(server):
    client = m3serve.Client(server.target)
    total = client.catalog().total_instances
    seen = []
    for i in range(3):
        for batch in client.stream(shard=(i, 3), shuffle=True, seed=5, images="none", batch_size=7):
            seen += [x.id for x in batch.instances]
    assert len(seen) == total and len(set(seen)) == total
    full = [x.id for b in client.stream(shard=(1, 2), shuffle=True, seed=9, images="none") for x in b.instances]
    it = client.stream(shard=(1, 2), shuffle=True, seed=9, images="none", batch_size=5)
    first = next(it)
    it.close()
    rest = [x.id for b in client.stream(shard=(1, 2), shuffle=True, seed=9, images="none", batch_size=5,
                                        resume_token=first.resume_token) for x in b.instances]
    assert [x.id for x in first.instances] + rest == full


def test_errors_carry_the_grpc_code_and_message(server):
    client = m3serve.Client(server.target)
    with pytest.raises(m3serve.M3ServeError) as e:
        list(client.stream(shard=(3, 3)))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "sharding.index" in e.value.details
    with pytest.raises(m3serve.M3ServeError) as e:
        client.count(tasks=["no-such-task"])
    assert e.value.code == grpc.StatusCode.NOT_FOUND and "selection.tasks" in e.value.details
    with pytest.raises(m3serve.M3ServeError) as e:
        client.get(["coco/train/en/123456"])
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(m3serve.M3ServeError) as e:
        list(client.stream(batch_size=0))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "batch_size" in e.value.details
    with pytest.raises(ValueError):
        client.stream(images="jpeg")


def test_server_killed_and_restarted_mid_iteration(own_server):
    client = m3serve.Client(own_server.target, initial_backoff=0.05, max_backoff=0.5)
    want = [x.id for b in client.stream(shuffle=True, seed=3, images="none") for x in b.instances]
    got = []
    for n, batch in enumerate(client.stream(shuffle=True, seed=3, images="encoded", batch_size=4)):
        got += [x.id for x in batch.instances]
        if n == 3:
            own_server.restart()  # SIGKILL, then the same port again
    assert got == want
