#!/usr/bin/env python3
"""Generates every file under tests/data/fixtures/ (the data-set and tokenizer test fixtures).

Rerun from the repository root after changing it:  python3 tests/data/make_fixtures.py
It deletes and rewrites what it owns in tests/data/fixtures/ (not images/, npy/, tokenizers/,
which have generators of their own) with deterministic bytes (gzip mtime 0, no
randomness), so a rerun without changes leaves `git status` clean. Python 3 standard library only.

What it writes:
  fashion-mnist/      a tiny, valid Fashion-MNIST folder: 36 train and 12 t10k 28x28 images
  fashion-partial/    only the train files (load "test" must name the missing t10k file)
  fashion-bad/        broken IDX files: not gzip, truncated gzip, wrong magic, too few bytes, a gzip
                      bomb, a header promising terabytes,
                      35 labels for 36 images, a label of 10
  spam/               40 SpamAssassin-style mails in 4 groups, named <nnnnn>.<md5>.json
  spam-no-text/, spam-no-group/, spam-no-checksum/, spam-invalid-json/
                      one good mail plus one broken file each
  tokenizer-corpus.txt  200 short English lines for tokenizer training
"""
import gzip
import hashlib
import json
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def write(rel, data):
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx_images(n, magic=0x803, count=None):
    """IDX image file: header says `count` (default n) images of 28x28, holds n images."""
    header = struct.pack(">IIII", magic, n if count is None else count, 28, 28)
    pixels = bytes((i * 31 + r * 7 + c * 3) % 256 for i in range(n) for r in range(28) for c in range(28))
    return header + pixels


def idx_labels(labels, magic=0x801):
    return struct.pack(">II", magic, len(labels)) + bytes(labels)


def fashion():
    train_images, train_labels = idx_images(36), idx_labels([i % 10 for i in range(36)])
    test_images, test_labels = idx_images(12), idx_labels([(i * 3) % 10 for i in range(12)])
    for folder in ("fashion-mnist", "fashion-partial"):
        write(f"{folder}/train-images-idx3-ubyte.gz", gz(train_images))
        write(f"{folder}/train-labels-idx1-ubyte.gz", gz(train_labels))
    write("fashion-mnist/t10k-images-idx3-ubyte.gz", gz(test_images))
    write("fashion-mnist/t10k-labels-idx1-ubyte.gz", gz(test_labels))

    good_gz = gz(train_images)
    write("fashion-bad/not-gzip-images-idx3-ubyte.gz", train_images)
    write("fashion-bad/truncated-images-idx3-ubyte.gz", good_gz[: len(good_gz) // 2])
    write("fashion-bad/bad-magic-images-idx3-ubyte.gz", gz(idx_images(36, magic=0x804)))
    write("fashion-bad/short-images-idx3-ubyte.gz", gz(idx_images(20, count=36)))
    write("fashion-bad/count-35-labels-idx1-ubyte.gz", gz(idx_labels([i % 10 for i in range(35)])))
    bad_label = [i % 10 for i in range(36)]
    bad_label[5] = 10
    write("fashion-bad/bad-value-labels-idx1-ubyte.gz", gz(idx_labels(bad_label)))
    # A gzip bomb: 36 good images, then 64 MB of zeros the header does not promise (64 kB packed);
    # and a header promising 2^32 - 1 images (3.4 TB) over a few bytes.
    write("fashion-bad/bomb-images-idx3-ubyte.gz", gz(train_images + bytes(64 << 20)))
    write("fashion-bad/huge-header-images-idx3-ubyte.gz", gz(idx_images(2, count=0xFFFFFFFF)))


SUBJECTS_HAM = ["Re: build failure on sparc", "meeting notes for Thursday", "[exmh] patch for folder sort",
                "Re: kernel 2.4.19 and ext3", "lunch next week?", "Re: perl regex question"]
SUBJECTS_SPAM = ["FREE cable descrambler!!!", "Lose 30 pounds in 30 days", "Your mortgage approval",
                 "Make $5000 a week from home", "Cheap meds online, no prescription", "You have WON"]
BODY_HAM = ["I tried the patch on my machine and the build works now.",
            "Can we move the meeting to Friday afternoon? The room is booked.",
            "The folder sort order is wrong when the sequence file is empty.",
            "ext3 journaling works fine with 2.4.19, just mount with data=ordered."]
BODY_SPAM = ["Click here to claim your FREE prize now! Limited offer.",
             "Our doctors ship cheap pills to your door, no prescription needed.",
             "Refinance today and save thousands. Act now, rates are rising!",
             "Earn money from home with this amazing opportunity."]


def raw_mail(i, spam, group):
    subject = (SUBJECTS_SPAM if spam else SUBJECTS_HAM)[i % 6]
    body = (BODY_SPAM if spam else BODY_HAM)[i % 4]
    sender = f"offers{i}@deals.example.com" if spam else f"user{i}@lists.example.org"
    headers = [
        f"From {sender}  Thu Aug 22 12:36:{i % 60:02d} 2002",
        f"Return-Path: <{sender}>",
        "Received: from relay.example.net (relay.example.net [10.0.0.1])",
        f"\tby mx.example.org (Postfix) with ESMTP id A{i:04d}",
        f"From: Person {i} <{sender}>",
        f"Subject: {subject}",
        f"Message-Id: <{i}.{group}@example.org>",
    ]
    if i % 5 == 0:  # a folded subject
        headers[5] = f"Subject: {subject}\n\tcontinued line {i}"
    lines = headers + ["", body, f"mail number {i} in {group}"]
    if spam and i % 3 == 0:  # HTML spam with style, entities and a base64 attachment
        lines += ["<html><head><style>p { color: red; }</style></head>",
                  "<body><p>Buy&nbsp;now &amp; save</p><!-- hidden text --></body></html>",
                  "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg=="]
    text = "\n".join(lines) + "\n"
    if i % 7 == 0:
        text = text.replace("\n", "\r\n")
    return text


def mail_json(number, group, text, drop=None):
    md5 = hashlib.md5(text.encode("utf-8")).hexdigest()
    record = {"id": f"{number:05d}", "group": group, "checksum": {"type": "MD5", "value": md5}, "text": text}
    if drop:
        del record[drop]
    return f"{number:05d}.{md5}.json", json.dumps(record)


def fnv1a_64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def spam():
    groups = [("easy-ham-1", 12, False), ("hard-ham-1", 6, False), ("spam-1", 10, True), ("spam-2", 12, True)]
    buckets = {"train": 0, "validation": 0, "test": 0}
    i = 0
    for group, count, is_spam in groups:
        for number in range(1, count + 1):
            name, content = mail_json(number, group, raw_mail(i, is_spam, group))
            write(f"spam/{group}/{name}", content)
            b = fnv1a_64(name.split(".")[1]) % 10
            buckets["train" if b < 8 else "validation" if b == 8 else "test"] += 1
            i += 1
    # The split tests need every split non-empty; fail here rather than in the C++ tests.
    assert all(buckets.values()), buckets
    # Files beside the group folders, as in the real package (data.js, file_list.json): ignored.
    write("spam/file_list.json", json.dumps(["easy-ham-1/00001.txt"]))

    for folder, drop in (("spam-no-text", "text"), ("spam-no-group", "group"), ("spam-no-checksum", "checksum")):
        name, content = mail_json(1, "easy-ham-1", raw_mail(1, False, "easy-ham-1"))
        write(f"{folder}/easy-ham-1/{name}", content)
        name, content = mail_json(2, "spam-1", raw_mail(2, True, "spam-1"), drop=drop)
        write(f"{folder}/spam-1/{name}", content)
    name, content = mail_json(1, "easy-ham-1", raw_mail(1, False, "easy-ham-1"))
    write(f"spam-invalid-json/easy-ham-1/{name}", content)
    name, content = mail_json(2, "spam-1", raw_mail(2, True, "spam-1"))
    write(f"spam-invalid-json/spam-1/{name}", content[: len(content) // 2])


def corpus():
    subjects = ["the model", "a small network", "the edge device", "our cloud server", "the phone",
                "this mail filter", "the tokenizer", "a quantized layer"]
    verbs = ["runs", "measures", "sends", "compresses", "predicts", "learns", "splits", "caches"]
    objects = ["the latency of each request", "spam and ham mails", "images of shoes and shirts",
               "int8 weights per channel", "tensors over a slow link", "free offers now",
               "money from home", "the validation accuracy"]
    lines = []
    for i in range(200):
        lines.append(f"{subjects[i % 8]} {verbs[(i // 8) % 8]} {objects[(i * 3) % 8]} at step {i}.")
    write("tokenizer-corpus.txt", "\n".join(lines) + "\n")


# Sub-folders other generators own (make_image_fixtures.py, make_npy_fixtures.py,
# make_tokenizer_fixtures.sh): left as they are.
OTHERS = {"images", "npy", "tokenizers"}


def main():
    os.makedirs(ROOT, exist_ok=True)
    for entry in os.listdir(ROOT):
        if entry in OTHERS:
            continue
        full = os.path.join(ROOT, entry)
        shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
    write("README.md", "Generated by tests/data/make_fixtures.py; do not edit by hand.\n"
          "Regenerate from the repository root with: python3 tests/data/make_fixtures.py\n")
    fashion()
    spam()
    corpus()


if __name__ == "__main__":
    main()
