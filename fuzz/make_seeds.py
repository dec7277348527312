#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

The seeds are committed; run this again only to change them:
    PYTHONPATH=build/python /usr/bin/python3 fuzz/make_seeds.py
It needs Pillow and the generated protobuf module (a build's build/python).
Inputs found by fuzzing (crashes once fixed, interesting cases) are added to
the corpus directories by hand, named after what they exercise; this script
does not remove them.
"""
import base64
import io
import json
import os
import struct
import sys

from PIL import Image

from m3serve.v1 import dataset_pb2 as pb

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def image(fmt, size=(4, 3), **kw):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(buf, fmt, **kw)
    return buf.getvalue()


def images():
    out = {
        "jpeg": image("JPEG", quality=60),
        "jpeg-progressive": image("JPEG", progressive=True),
        "png": image("PNG"),
        "gif": image("GIF"),
        "bmp": image("BMP"),
        "webp": image("WEBP"),
        "tiff": image("TIFF"),
    }
    jpeg = out["jpeg"]
    out["jpeg-truncated"] = jpeg[: len(jpeg) // 2]
    # A PNG whose header claims 100000 x 100000 pixels (a decompression bomb).
    png = bytearray(out["png"])
    png[16:24] = struct.pack(">II", 100000, 100000)
    out["png-bomb-header"] = bytes(png)
    out["png-zero-size"] = bytes(png[:16] + struct.pack(">II", 0, 0) + png[24:])
    out["header-only-jpeg"] = jpeg[:4]
    out["not-an-image"] = b"<html>not an image</html>"
    return out


def image_probe_seeds():
    for name, data in images().items():
        write("image_probe_fuzzer", name, data)


def base64_seeds():
    png = base64.b64encode(images()["png"]).decode()
    seeds = {
        "plain": "aGVsbG8gd29ybGQ=",
        "two-pad": "YQ==",
        "no-pad": "YWJj",
        "data-uri": "data:image/png;base64," + png,
        "data-uri-no-base64": "data:image/png," + png,
        "whitespace": "aGVs bG8=",
        "newline": "aGVs\nbG8=",
        "url-safe": "a-_b",
        "misplaced-pad": "YQ=a",
        "short": "YQ",
        "nonzero-pad-bits": "YR==",
        "empty": "",
        "image": png,
    }
    for name, s in seeds.items():
        write("base64_fuzzer", name, s)


def row_seeds():
    """One byte (mapping index | line selector << 4), then one JSONL line."""
    mappings = ["generic", "coco", "vqa-v2", "okvqa", "a-okvqa", "viquae", "vist",
                "snli-ve", "imagenet", "ss", "rephrased", "translated"]
    img = base64.b64encode(images()["png"]).decode()
    jpg = base64.b64encode(images()["jpeg"]).decode()
    bomb = base64.b64encode(images()["png-bomb-header"]).decode()
    cut = base64.b64encode(images()["jpeg-truncated"]).decode()
    rows = {
        "generic": [{"instruction": "Describe.", "inputs": "", "image_base64_str": [img], "outputs": "red"},
                    {"instruction": "i", "input": "x", "image": img, "output": "o"},
                    {"instruction": "i", "inputs": 7, "image_base64_str": [img], "outputs": "o"},
                    {"instruction": "i", "inputs": "", "image_base64_str": [bomb], "outputs": "o"},
                    {"instruction": "i", "inputs": "", "image_base64_str": [cut], "outputs": "o"},
                    {"instruction": "i", "inputs": "", "image_base64_str": ["aGVs bG8="], "outputs": "o"},
                    {"instruction": "i", "inputs": "", "outputs": "o"}],
        "coco": [{"image": img, "meta": {"targets": ["a red square", "a square"]}}],
        "vqa-v2": [{"question": "What color?", "img_str": img, "original_answer": "red",
                    "paraphrased_answer": "It is red."},
                   {"question": "q", "img_str": jpg, "original_answer": "2", "paraphrased_answer": "Sorry"}],
        "okvqa": [{"question": "q", "image_str": img, "answer": "a", "paraphrased_answer": "p"}],
        "a-okvqa": [{"question": "q", "image_str": img, "rationale": "because", "answer": "yes"}],
        "viquae": [{"question": "q", "img_str": img, "paraphrased_answer": "p"},
                   {"question": "q", "img_str": img, "answer": "a"}],
        "vist": [{"images": [img, jpg], "sentences": ["one", "two"]}],
        "snli-ve": [{"hypothesis": "a square", "image_base64_str": img, "label": "entailment",
                     "rationale": "r"}],
        "imagenet": [{"img_str": img, "label": 1}, {"img_str": img, "label": "tench"}],
        "ss": [{"video_str": [img, img, jpg], "label": "Holding something"}],
        "rephrased": [{"meta": {"instruction": "i", "inputs": "n", "image_base64_str": [img]}, "answer": "a"}],
        "translated": [{"instruction": "Décrivez.", "input": "", "output": "rouge"},
                       {"id": "q2", "instruction": "i", "input": "", "output": "o"},
                       {"id": 7, "instruction": "i", "input": "", "output": "o"},
                       {"instruction": "i", "input": "", "output": "o", "image_base64_str": [img]}],
    }
    for i, name in enumerate(mappings):
        for k, row in enumerate(rows[name]):
            write("row_mapper_fuzzer", f"{name}-{k}", bytes([i]) + json.dumps(row, ensure_ascii=False).encode())
    write("row_mapper_fuzzer", "deeply-nested", bytes([0]) + b"[" * 5000 + b"]" * 5000)
    write("row_mapper_fuzzer", "not-an-object", bytes([0]) + b'["instruction", "outputs"]')
    write("row_mapper_fuzzer", "line-2-join", bytes([11 | (1 << 4)]) + b'{"instruction": "i", "input": "", "output": "o"}')


def stream_request_seeds():
    def req(**kw):
        r = pb.StreamRequest(**kw)
        return r.SerializeToString()
    seeds = {
        "empty": b"",
        "one-task": req(selection=pb.Selection(tasks=["coco"])),
        "sharded-shuffled": req(selection=pb.Selection(tasks=["vqa-v2"], languages=["zh"]),
                                sharding=pb.Sharding(index=3, count=8), order=pb.ORDER_SHUFFLED,
                                seed=17, epoch=2, batch_size=32),
        "decoded": req(images=pb.ImageOptions(mode=pb.IMAGE_MODE_DECODED, width=224, height=224,
                                              resize=pb.RESIZE_MODE_FILL, max_images_per_instance=8)),
        "filters": req(selection=pb.Selection(categories=["captioning"], splits=["train"],
                                              licenses=["CC BY 4.0"], commercial_use_only=True,
                                              exclude_tasks=["msrvtt"], modality=pb.MODALITY_IMAGE)),
        "unknown-task": req(selection=pb.Selection(tasks=["no-such-task"])),
        "policy-excluded": req(selection=pb.Selection(tasks=["winoground"])),
        "not-entitled": req(selection=pb.Selection(tasks=["coco-cn"])),
        "bad-sharding": req(sharding=pb.Sharding(index=8, count=8)),
        "zero-batch": req(batch_size=0),
        "huge-batch": req(batch_size=1 << 30, max_message_bytes=1 << 40),
        "limit-start": req(limit=10, start_position=1000),
        "start-beyond": req(start_position=1 << 40),
        "forged-token": req(resume_token=b"\x01forged-position\x00" * 3),
        "video": req(selection=pb.Selection(modality=pb.MODALITY_VIDEO),
                     images=pb.ImageOptions(mode=pb.IMAGE_MODE_NONE), instructions=pb.INSTRUCTION_MODE_RESAMPLE),
        "huge-image": req(images=pb.ImageOptions(mode=pb.IMAGE_MODE_DECODED, width=1 << 20, height=1)),
        "schedule": req(schedule=pb.Schedule(world_size=4, rank=3, batch_size=16, num_workers=2, worker=1,
                                             start_sample=100, drop_remainder=True), order=pb.ORDER_SHUFFLED),
        "schedule-bad-rank": req(schedule=pb.Schedule(world_size=2, rank=2, batch_size=1, num_workers=1)),
        "schedule-and-sharding": req(schedule=pb.Schedule(world_size=1, batch_size=1, num_workers=1),
                                     sharding=pb.Sharding(index=0, count=1)),
        "mixture-weights": req(mixture=pb.Mixture(components=[pb.MixtureComponent(key="coco", weight=0.2),
                                                              pb.MixtureComponent(key="*", weight=1.0)],
                                                  epoch_size=500, stratified=True, stratum=7),
                               order=pb.ORDER_SHUFFLED, seed=3),
        "mixture-temperature": req(mixture=pb.Mixture(temperature=2.0),
                                   schedule=pb.Schedule(world_size=2, batch_size=8, num_workers=1)),
        "mixture-task-lang": req(mixture=pb.Mixture(components=[pb.MixtureComponent(key="vqa-v2:zh", weight=1),
                                                                pb.MixtureComponent(key="vqa-v2:en", weight=3)])),
        "mixture-not-entitled": req(mixture=pb.Mixture(components=[pb.MixtureComponent(key="coco-cn", weight=1)])),
        "mixture-tiny-stratum": req(mixture=pb.Mixture(temperature=1, epoch_size=1 << 31, stratified=True,
                                                       stratum=1)),
        "plan-fingerprint": req(plan_fingerprint="00112233445566778899aabbccddeeff"),
    }
    for name, data in seeds.items():
        write("stream_request_fuzzer", name, data)


def resume_token_seeds():
    """A mode byte (mode % 3: raw / XOR into a valid token / valid prefix + payload;
    mode >> 2 picks the issuing plan), then a payload."""
    seeds = {
        "raw-garbage": b"\x00" + b"not a token",
        "raw-empty": b"\x00",
        "valid-position-0": b"\x01" + b"\x00" * 8,
        "valid-position-5": b"\x01" + struct.pack("<Q", 5),
        "valid-last": b"\x01" + struct.pack("<Q", 125),
        "flip-one-bit": b"\x01" + struct.pack("<Q", 9) + b"\x00" * 20 + b"\x01",
        "other-plan-valid": bytes([1 | (3 << 2)]) + struct.pack("<Q", 77),
        "truncated": b"\x02" + b"\x10",
        "extended": b"\x02" + b"\xff" + b"trailing bytes",
    }
    for name, data in seeds.items():
        write("resume_token_fuzzer", name, data)


def record_codec_seeds():
    """A selector byte (0 instance, 1 image meta, 2 task, 3 string list, 4 file
    progress, 5 instance key, 6 instance id), then the bytes: records in the
    store's encoding (storage/record_codec.cc) and some corrupt ones."""
    def varint(v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    def s(x):
        x = x.encode() if isinstance(x, str) else x
        return varint(len(x)) + x

    v = b"\x01"  # record version
    instance = (v + s("Answer the question.") + s("What color?") + s("red") + varint(2) + b"\xab" * 16 +
                b"\xcd" * 16 + s("data/vqa/vqa-v2/train.jsonl") + varint(17) + varint(0) + s('{"k": 1}') +
                varint(1) + s("HYPO") + s("a square"))
    seeds = {
        "instance": b"\x00" + instance,
        "instance-truncated": b"\x00" + instance[:40],
        "instance-huge-count": b"\x00" + v + s("") + s("") + s("") + varint(1 << 40),
        "image-meta": b"\x01" + v + varint(1) + varint(640) + varint(480) + varint(123456),
        "image-meta-bad-format": b"\x01" + v + varint(99) + varint(1) + varint(1) + varint(1),
        "task": b"\x02" + v + s("vqa-v2") + s("vqa") + s("VQA v2") + s("CC BY 4.0") + varint(1) + varint(0) +
                varint(0) + s("en"),
        "string-list": b"\x03" + v + varint(3) + s("Answer.") + s("") + s("Répondez."),
        "string-list-long-varint": b"\x03" + v + b"\xff" * 11,
        "progress": b"\x04" + v + s("size:123;mtime:456") + varint(1 << 30) + varint(77) + varint(1) +
                    varint(70) + varint(350) + varint(7),
        "bad-version": b"\x04" + b"\x02" + s("x"),
        "instance-key": b"\x05" + b"vqa-v2\x00train\x00en\x00" + (42).to_bytes(8, "big"),
        "instance-key-no-lang": b"\x05" + b"vqa-v2\x00train\x00" + (42).to_bytes(8, "big"),
        "instance-id": b"\x06" + b"vqa-v2/train/en/42",
        "instance-id-bad-ordinal": b"\x06" + b"vqa-v2/train/en/-1",
        "instance-id-slashes": b"\x06" + b"../../etc/passwd/0",
    }
    for name, data in seeds.items():
        write("record_codec_fuzzer", name, data)


def main():
    record_codec_seeds()
    image_probe_seeds()
    base64_seeds()
    row_seeds()
    stream_request_seeds()
    resume_token_seeds()
    for target in sorted(os.listdir(ROOT)):
        print(f"{target}: {len(os.listdir(os.path.join(ROOT, target)))} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
