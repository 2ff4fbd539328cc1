#!/usr/bin/env python3
"""Writes the seed requests of fuzz_agent (fuzz/corpus/agent/): serialised InferRequests of
proto/edgeforge/agent.proto, encoded by hand (no protobuf module needed): a 28x28 frame, a text,
and tensors in encode_tensors' format (src/tiers/wire.cpp). Run once; the files are committed."""
import os
import struct

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent")


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, payload):  # length-delimited
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def vfield(number, n):  # varint
    return varint(number << 3) + varint(n)


def stage(tier, model, inputs):
    return field(1, tier.encode()) + field(2, model.encode()) + b"".join(field(3, i.encode()) for i in inputs)


def tensors(shapes):
    out = struct.pack("<I", len(shapes))
    for shape in shapes:
        out += bytes([1, len(shape)]) + b"".join(struct.pack("<q", d) for d in shape)
        n = 1
        for d in shape:
            n *= d
        out += struct.pack("<%df" % n, *([0.5] * n))
    return out


model = "ab" * 32
frame = field(1, stage("mobile", model, ["input"])) + field(2, model.encode()) + field(
    3, field(1, b"frame") + field(2, bytes(range(256)) * (28 * 28 * 3 // 256) + bytes(28 * 28 * 3 % 256))
    + vfield(3, 28) + vfield(4, 28))
text = field(1, stage("mobile", model, ["input_ids", "attention_mask"])) + field(2, model.encode()) + field(
    3, field(1, b"text") + field(2, "Subject: hello\nwin money now".encode()))
tens = (field(1, stage("edge", model, ["x"])) + field(4, tensors([[1, 4, 2, 2], [3]])) + field(5, b"x")
        + vfield(6, 1))
os.makedirs(here, exist_ok=True)
for name, data in (("frame.bin", frame), ("text.bin", text), ("tensors.bin", tens)):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
