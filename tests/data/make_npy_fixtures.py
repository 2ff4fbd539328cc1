#!/usr/bin/python3
"""Generates tests/data/fixtures/npy/, the fixtures of tests/data/npy_test.cpp.

Rerun from the repository root after changing it:  /usr/bin/python3 tests/data/make_npy_fixtures.py
It needs NumPy (Debian: apt-get install python3-numpy, which is for /usr/bin/python3). It deletes
and rewrites tests/data/fixtures/npy/ with deterministic bytes (zip timestamps pinned to
1980-01-01, no randomness), so a rerun with the same NumPy and zlib leaves `git status` clean.
About 15 kB in all.

The values follow formulas that the C++ test recomputes; i is the flat C-order index:
  float16/32/64             (i - 2) * 0.75             (exact in every float type)
  int8/16/32/64             [min, -1, 0, 1, 42, max]
  uint8/16/32/64            [0, 1, 2, 42, max - 1, max]
  bool                      i % 2 == 0

What it writes, all by numpy unless marked "by hand":
  good/dtype_<dtype>.npy      shape (2, 3), each of the 12 dtypes, np.save (format 1.0)
  good/be_<dtype>.npy         the same, big-endian ('>'), for the 9 multi-byte dtypes
  good/scalar_float64.npy     shape (), 3.5
  good/empty_float32.npy      shape (0, 3)
  good/vector_int64.npy       shape (5,), i
  good/fortran_int32.npy      shape (2, 3, 4), C-order value i, stored in Fortran order
  good/fortran_be_float64.npy shape (2, 3), C-order value i, Fortran order and big-endian
  good/v2_float32.npy         the float32 array in format 2.0
  good/v3_int16.npy           the int16 array in format 3.0
  good/native_int32.npy       by hand: descr '=i4', values i, shape (2, 3)
  good/legacy_int16.npy       by hand: double quotes, keys reordered, Python 2 dims "(2L, 3L)"
  good/inputs.npz             np.savez (stored): arr_0 int16 (3,) i; input_ids int64 (4, 8)
                              100 + i; attention_mask int64 (4, 8) 1 if i % 8 < 5 else 0;
                              pixel_values float32 (4, 3, 2, 2) i * 0.25; labels int64 (4,) i % 2
  good/inputs_compressed.npz  the same arrays with np.savez_compressed (deflate)
  bad/*.npy, bad/*.npz        one refusal each: see BAD below
"""
import io
import os
import shutil
import struct
import time
import zipfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "npy")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool"]


def values(dtype):
    """The (2, 3) array of `dtype` the module docstring describes."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        flat = [(i - 2) * 0.75 for i in range(6)]
    elif dt.kind == "i":
        info = np.iinfo(dt)
        flat = [info.min, -1, 0, 1, 42, info.max]
    elif dt.kind == "u":
        info = np.iinfo(dt)
        flat = [0, 1, 2, 42, info.max - 1, info.max]
    else:
        flat = [i % 2 == 0 for i in range(6)]
    return np.array(flat, dtype=dt).reshape(2, 3)


def path(rel):
    p = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(rel, data):
    with open(path(rel), "wb") as f:
        f.write(data)


def save(rel, array, version=None):
    with open(path(rel), "wb") as f:
        np.lib.format.write_array(f, array, version=version, allow_pickle=True)


def npy_by_hand(header, data=b"", version=(1, 0), magic=b"\x93NUMPY"):
    """A .npy file with an arbitrary header text, padded the way numpy pads."""
    text = header.encode("latin1")
    fmt = "<H" if version[0] == 1 else "<I"
    hlen = len(text) + 1
    pad = 64 - (len(magic) + 2 + struct.calcsize(fmt) + hlen) % 64
    return (magic + bytes(version) + struct.pack(fmt, hlen + pad) + text + b" " * pad + b"\n"
            + data)


class _FixedTime:
    """Stands in for the time module inside zipfile, which stamps members with the current time."""

    @staticmethod
    def time():
        return 0.0

    @staticmethod
    def localtime(secs=None):
        return time.struct_time(ZIP_DATE + (1, 1, 0))


def savez(rel, compressed, **arrays):
    real_time = zipfile.time
    zipfile.time = _FixedTime
    try:
        (np.savez_compressed if compressed else np.savez)(path(rel), *arrays.pop("args"), **arrays)
    finally:
        zipfile.time = real_time


def zip_by_hand(rel, members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)
    write(rel, buf.getvalue())


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    return buf.getvalue()


def npz_arrays():
    i32 = np.arange(32)
    return dict(
        args=[np.arange(3, dtype=np.int16)],
        input_ids=(100 + i32).astype(np.int64).reshape(4, 8),
        attention_mask=(i32 % 8 < 5).astype(np.int64).reshape(4, 8),
        pixel_values=(np.arange(48) * 0.25).astype(np.float32).reshape(4, 3, 2, 2),
        labels=(np.arange(4) % 2).astype(np.int64),
    )


def write_good():
    for dtype in DTYPES:
        save(f"good/dtype_{dtype}.npy", values(dtype))
        if np.dtype(dtype).itemsize > 1:
            save(f"good/be_{dtype}.npy", values(dtype).astype(np.dtype(dtype).newbyteorder(">")))
    save("good/scalar_float64.npy", np.array(3.5))
    save("good/empty_float32.npy", np.zeros((0, 3), dtype=np.float32))
    save("good/vector_int64.npy", np.arange(5, dtype=np.int64))
    fortran = np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    save("good/fortran_int32.npy", fortran)
    fortran_be = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)).astype(">f8")
    assert fortran_be.flags.f_contiguous and not fortran_be.flags.c_contiguous
    save("good/fortran_be_float64.npy", fortran_be)
    save("good/v2_float32.npy", values("float32"), version=(2, 0))
    save("good/v3_int16.npy", values("int16"), version=(3, 0))
    write("good/native_int32.npy",
          npy_by_hand("{'descr': '=i4', 'fortran_order': False, 'shape': (2, 3), }",
                      np.arange(6, dtype="<i4").tobytes()))
    write("good/legacy_int16.npy",
          npy_by_hand('{"shape": (2L, 3L), "fortran_order": False, "descr": "<i2"}',
                      values("int16").astype("<i2").tobytes()))
    for rel in ["good/native_int32.npy", "good/legacy_int16.npy"]:
        np.load(path(rel))  # numpy reads the hand-made headers too
    savez("good/inputs.npz", False, **npz_arrays())
    savez("good/inputs_compressed.npz", True, **npz_arrays())


def f32(n):
    return np.arange(n, dtype="<f4").tobytes()


# name -> bytes of a file each refusal test reads; the test pairs each with the problem it names.
BAD = {
    "object.npy": lambda: npy_bytes(np.array([1, "a", None], dtype=object)),
    "structured.npy": lambda: npy_bytes(np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])),
    "unicode.npy": lambda: npy_bytes(np.array(["ab", "c"])),
    "bytes.npy": lambda: npy_bytes(np.array([b"ab", b"c"])),
    "complex.npy": lambda: npy_bytes(np.zeros(2, dtype=np.complex64)),
    "datetime.npy": lambda: npy_bytes(np.array(["2020-01-01"], dtype="datetime64[D]")),
    "float128.npy": lambda: npy_by_hand(
        "{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", b"\0" * 16),
    "bad_magic.npy": lambda: b"\x93NUMPZ" + npy_bytes(values("float32"))[6:],
    "text.npy": lambda: b"1,2,3\n",
    "empty.npy": lambda: b"",
    "version4.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32(2), version=(4, 0)),
    "header_call.npy": lambda: npy_by_hand(
        "dict(descr='<f4', fortran_order=False, shape=(2,))", f32(2)),
    "header_expression.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1 + 1,), }", f32(2)),
    "header_no_comma.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }", f32(2)),
    "header_extra_key.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1, }", f32(2)),
    "header_missing_shape.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, }", f32(2)),
    "header_duplicate_key.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32(2)),
    "header_trailing_text.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", f32(2)),
    "header_bad_bool.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", f32(2)),
    "header_past_end.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32(2))[:40],
    "negative_dim.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", f32(2)),
    "huge_dim.npy": lambda: npy_by_hand(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
    "product_overflow.npy": lambda: npy_by_hand(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
    "exceeds_file.npy": lambda: npy_by_hand(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }", b"\0" * 8),
    "short_data.npy": lambda: npy_bytes(values("float32"))[:-4],
    "long_data.npy": lambda: npy_bytes(values("float32")) + b"\0\0\0\0",
    "bool_byte.npy": lambda: npy_by_hand(
        "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b"\x00\x01\x02"),
}


def write_bad():
    for name, make in BAD.items():
        write("bad/" + name, make())
    good = npy_bytes(values("float32"))
    zip_by_hand("bad/not_npy_member.npz", [("input_ids.npy", good), ("notes.txt", b"hello\n")])
    zip_by_hand("bad/bad_member.npz", [("input_ids.npy", good), ("labels.npy", b"not npy\n")])
    write("bad/not_zip.npz", b"this is not a zip archive\n")
    with open(path("good/inputs.npz"), "rb") as f:
        stored = bytearray(f.read())
    write("bad/truncated.npz", bytes(stored[: len(stored) // 2]))
    # One data byte of the first member flipped: only the CRC tells.
    start = stored.index(b"\x93NUMPY")
    data = start + 10 + struct.unpack("<H", stored[start + 8:start + 10])[0]
    stored[data] ^= 0x01
    write("bad/crc.npz", bytes(stored))


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    write_good()
    write_bad()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total} bytes)")


if __name__ == "__main__":
    main()
