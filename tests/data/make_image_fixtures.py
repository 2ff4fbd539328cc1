#!/usr/bin/env python3
"""Generates tests/data/fixtures/images/: small test images and what PIL and torchvision make of
them, for tests/data/image_io_test.cpp (src/data/image_io.cpp).

Rerun from the repository root after changing it:
    /usr/bin/python3 tests/data/make_image_fixtures.py
It deletes and rewrites tests/data/fixtures/images/ with deterministic bytes (no clock, seeded
noise), so a rerun with the same Debian 12 packages leaves `git status` clean. It needs Debian's
python3-pil, python3-numpy and python3-torchvision (apt-get install python3-torchvision
python3-pil python3-numpy), run by /usr/bin/python3, not a pyenv or venv Python without them.
tests/data/make_fixtures.py deletes fixtures/ as a whole, this folder included: run this script
after it. The expected outputs depend on those versions (PIL 9.4, torchvision 0.14,
libjpeg-turbo 2.1): regenerate them only together with a check that the C++ code still matches.

What it writes (all arrays are .npy files, uint8 HWC pixels or float32 CHW tensors):
  images          photo.jpg (300x200, quality 90, 4:2:0), photo_444.jpg, photo_422.jpg,
                  progressive.jpg, grey.jpg, cmyk.jpg (Adobe CMYK), exif_rotated.jpg (EXIF
                  orientation 6), rgba.png, la.png (grey+alpha), la16.png, palette.png (with
                  tRNS), palette4.png (4-bit, indices past the palette), grey16.png, rgb16.png,
                  grey1.png, grey2.png, interlaced.png (Adam7), tiny.png (7x5, upscaled)
  <image>.decoded.npy
                  Image.open(f) converted to 'L' when edgeforge decodes it to one channel, else
                  to 'RGB': what image::decode must return, bit for bit
  <image>.<case>.npy
                  torchvision's output for the cases in PIPELINES (Resize, CenterCrop, optional
                  Grayscale, ToTensor, Normalize) on default_loader's image, float32 CHW
  <image>.<case>.npy for RESIZES
                  PIL Image.resize alone, uint8 HWC
  broken files    truncated.jpg, truncated_eoi.jpg (only the final EOI marker missing),
                  truncated.png, empty.jpg, text.jpg, huge_side.png (40000x8 header),
                  huge_area.jpg (20000x20000 header), many_scans.jpg (510 progressive scans,
                  which PIL decodes and edgeforge refuses), anim.gif (a format edgeforge refuses)
"""
import io
import os
import shutil
import struct
import sys
import warnings
import zlib

try:
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms import InterpolationMode
except ImportError as e:
    sys.exit(f"make_image_fixtures.py: {e}; run it with /usr/bin/python3 after "
             "`apt-get install python3-torchvision python3-pil python3-numpy`")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "images")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# (image, case name, resize, interpolation, crop (h, w), grey). image_io_test.cpp lists the same.
PIPELINES = [
    ("photo.jpg", "r256c224_bilinear", 256, "bilinear", (224, 224), False),
    ("photo.jpg", "r48c40_bicubic", 48, "bicubic", (40, 40), False),
    ("photo.jpg", "r48c40_nearest", 48, "nearest", (40, 40), False),
    # (64 - 59) / 2 = 2.5 and (96 - 95) / 2 = 0.5: Python's round() goes to the even 2 and 0
    ("photo.jpg", "r64c59x95_bilinear", 64, "bilinear", (59, 95), False),
    ("photo.jpg", "grey_r32c28", 32, "bilinear", (28, 28), True),
    ("photo_444.jpg", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("photo_422.jpg", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("progressive.jpg", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("grey.jpg", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("grey.jpg", "grey_r32c28", 32, "bilinear", (28, 28), True),
    ("cmyk.jpg", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("rgba.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("la.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("palette.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("grey16.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("rgb16.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("interlaced.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("tiny.png", "r48c40_bilinear", 48, "bilinear", (40, 40), False),
    ("tiny.png", "r48c40_bicubic", 48, "bicubic", (40, 40), False),
    # no resize: CenterCrop larger than the 7x5 image pads with zeros
    ("tiny.png", "c9x10", None, None, (9, 10), False),
    ("tiny.png", "c4x10", None, None, (4, 10), False),
]

# (image, case name, (width, height), interpolation): PIL Image.resize on the RGB image.
RESIZES = [
    ("photo.jpg", "resize_360x70_bicubic", (360, 70), "bicubic"),
    ("photo.jpg", "resize_19x13_bilinear", (19, 13), "bilinear"),
    ("photo.jpg", "resize_41x29_nearest", (41, 29), "nearest"),
    ("photo.jpg", "resize_300x77_bilinear", (300, 77), "bilinear"),
    ("photo.jpg", "resize_97x200_bicubic", (97, 200), "bicubic"),
    ("tiny.png", "resize_23x17_nearest", (23, 17), "nearest"),
    ("tiny.png", "resize_31x11_bicubic", (31, 11), "bicubic"),
]

INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                 "nearest": InterpolationMode.NEAREST}
PIL_FILTER = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}

# Images edgeforge decodes to one channel (PIL modes L, LA, 1, I and the grey RGBA of la16).
GREY_DECODES = {"grey.jpg", "la.png", "la16.png", "grey16.png", "grey1.png", "grey2.png"}


def path(name):
    return os.path.join(ROOT, name)


def write_bytes(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def save_npy(name, array):
    # np.save writes no timestamps: the same array gives the same bytes
    np.save(path(name), np.ascontiguousarray(array), allow_pickle=False)


def photo_like(width, height, seed):
    """Smooth gradients, hard-edged shapes, fine stripes and noise: what JPEG and antialiased
    resizing handle differently."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 100 * np.sin(x / 23.0) * np.cos(y / 31.0)
    g = 255 * x / (width - 1)
    b = 255 * y / (height - 1)
    img = np.stack([r, g, b], axis=-1)
    disc = (x - 0.62 * width) ** 2 + (y - 0.4 * height) ** 2 < (0.2 * height) ** 2
    img[disc] = (240, 30, 20)
    rect = (x > 0.1 * width) & (x < 0.35 * width) & (y > 0.55 * height) & (y < 0.9 * height)
    img[rect] = (10, 200, 60)
    stripes = (x > 0.7 * width) & (y > 0.7 * height)
    img[stripes] = np.where((x[stripes] // 2) % 2 == 0, 250, 5)[:, None]
    img += rs.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def jpeg_bytes(im, **kwargs):
    out = io.BytesIO()
    im.save(out, "JPEG", **kwargs)
    return out.getvalue()


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(width, height, bit_depth, colour_type, rows, extra_chunks=b"", interlaced=False):
    """A PNG from raw rows (bytes each, filter type 0): PIL cannot write 16-bit colour, low bit
    depths for every type, or Adam7."""
    if interlaced:
        raw = adam7_passes(width, height, bit_depth, colour_type, rows)
    else:
        raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0,
                       1 if interlaced else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra_chunks +
            png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def adam7_passes(width, height, bit_depth, colour_type, rows):
    assert bit_depth % 8 == 0, "adam7_passes handles whole-byte pixels only"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    bpp = channels * bit_depth // 8
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        for yy in range(y0, height, dy):
            if x0 >= width:
                continue
            row = b"".join(rows[yy][xx * bpp:(xx + 1) * bpp] for xx in range(x0, width, dx))
            out += b"\x00" + row
    return out


def pack_bits(values, bits):
    """Packs one row of small ints MSB first, as PNG stores sub-byte pixels."""
    per_byte = 8 // bits
    out = bytearray()
    for i in range(0, len(values), per_byte):
        byte = 0
        chunk = list(values[i:i + per_byte]) + [0] * (per_byte - len(values[i:i + per_byte]))
        for v in chunk:
            byte = (byte << bits) | v
        out.append(byte)
    return bytes(out)


def make_images():
    photo = photo_like(300, 200, seed=1)
    small = photo_like(151, 101, seed=2)
    write_bytes("photo.jpg", jpeg_bytes(Image.fromarray(photo), quality=90, subsampling=2))
    write_bytes("photo_444.jpg", jpeg_bytes(Image.fromarray(small), quality=90, subsampling=0))
    write_bytes("photo_422.jpg", jpeg_bytes(Image.fromarray(small), quality=90, subsampling=1))
    write_bytes("progressive.jpg", jpeg_bytes(Image.fromarray(small), quality=90, subsampling=2,
                                              progressive=True))
    write_bytes("grey.jpg", jpeg_bytes(Image.fromarray(small).convert("L"), quality=90))
    # convert("CMYK") leaves K at 0; a K ramp exercises the black channel of cmyk2rgb
    cmyk = np.concatenate([255 - small, (np.arange(151)[None, :, None] * 255 // 150 *
                                         np.ones((101, 1, 1))).astype(np.uint8)], axis=-1)
    write_bytes("cmyk.jpg", jpeg_bytes(Image.fromarray(cmyk, "CMYK"), quality=90))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": PIL's open ignores it, and so must decode
    write_bytes("exif_rotated.jpg", jpeg_bytes(Image.fromarray(small), quality=90,
                                               exif=exif.tobytes()))

    rs = np.random.RandomState(3)
    h, w = 47, 61
    rgb = photo_like(w, h, seed=4)
    alpha = rs.randint(0, 256, (h, w, 1)).astype(np.uint8)
    rgba = Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA")
    out = io.BytesIO()
    rgba.save(out, "PNG")
    write_bytes("rgba.png", out.getvalue())

    grey = np.array(Image.fromarray(rgb).convert("L"))
    la = Image.fromarray(np.stack([grey, alpha[..., 0]], axis=-1), "LA")
    out = io.BytesIO()
    la.save(out, "PNG")
    write_bytes("la.png", out.getvalue())

    # 16-bit grey+alpha: PIL keeps the high byte of each sample
    la16 = (grey.astype(np.uint16) * 257 + rs.randint(0, 256, grey.shape)).astype(">u2")
    rows = [np.stack([la16[y], (alpha[y, :, 0].astype(np.uint16) * 257).astype(">u2")],
                     axis=-1).tobytes() for y in range(h)]
    write_bytes("la16.png", png_bytes(w, h, 16, 4, rows))

    pal_im = Image.fromarray(rgb).quantize(colors=40, method=Image.MEDIANCUT, dither=0)
    out = io.BytesIO()
    pal_im.save(out, "PNG", transparency=bytes(range(0, 240, 6)))
    write_bytes("palette.png", out.getvalue())

    # 4-bit palette with 5 entries and indices up to 15: PIL shows index i past the palette as
    # grey (i, i, i)
    palette = bytes([200, 10, 10, 10, 200, 10, 10, 10, 200, 250, 250, 0, 30, 30, 30])
    idx = rs.randint(0, 16, (13, 9))
    rows = [pack_bits(idx[y], 4) for y in range(13)]
    write_bytes("palette4.png", png_bytes(9, 13, 4, 3, rows, png_chunk(b"PLTE", palette)))

    # 16-bit grey: PIL opens it as mode I and convert('RGB'/'L') clamps to 255 instead of
    # scaling, so most of this image turns white; the low ramp keeps values under 256
    g16 = np.zeros((h, w), dtype=np.uint16)
    g16[:, :] = (np.arange(w)[None, :] * 1000 + np.arange(h)[:, None] * 37) % 65536
    g16[: h // 2, : w // 2] = (np.arange(w // 2)[None, :] * 9 + np.arange(h // 2)[:, None] * 2)
    im16 = Image.fromarray(g16.astype(np.uint16))  # mode I;16, saved as a 16-bit grey PNG
    out = io.BytesIO()
    im16.save(out, "PNG")
    write_bytes("grey16.png", out.getvalue())

    rgb16 = (rgb.astype(np.uint16) * 257 ^ rs.randint(0, 256, rgb.shape).astype(np.uint16))
    rows = [rgb16[y].astype(">u2").tobytes() for y in range(h)]
    write_bytes("rgb16.png", png_bytes(w, h, 16, 2, rows))

    bits1 = (grey > 128).astype(np.uint8)
    write_bytes("grey1.png", png_bytes(w, h, 1, 0, [pack_bits(bits1[y], 1) for y in range(h)]))
    bits2 = grey // 64
    write_bytes("grey2.png", png_bytes(w, h, 2, 0, [pack_bits(bits2[y], 2) for y in range(h)]))

    write_bytes("interlaced.png",
                png_bytes(w, h, 8, 2, [rgb[y].tobytes() for y in range(h)], interlaced=True))

    tiny = rs.randint(0, 256, (5, 7, 3)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(tiny).save(out, "PNG")
    write_bytes("tiny.png", out.getvalue())


def make_broken():
    with open(path("photo.jpg"), "rb") as f:
        jpg = f.read()
    with open(path("rgba.png"), "rb") as f:
        png = f.read()
    write_bytes("truncated.jpg", jpg[: len(jpg) // 2])
    write_bytes("truncated_eoi.jpg", jpg[:-2])
    write_bytes("truncated.png", png[: len(png) // 2])
    write_bytes("empty.jpg", b"")
    write_bytes("text.jpg", b"this is a text file, not a JPEG\n")
    ihdr = struct.pack(">IIBBBBB", 40000, 8, 8, 2, 0, 0, 0)
    write_bytes("huge_side.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
                png_chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + png_chunk(b"IEND", b""))
    sof = jpg.index(b"\xff\xc0")  # baseline SOF: length(2) precision(1) height(2) width(2)
    huge = bytearray(jpg)
    huge[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    write_bytes("huge_area.jpg", bytes(huge))
    # A tiny progressive JPEG whose last scan is repeated 500 times: libjpeg (and PIL) decode
    # it, spending time on every scan; edgeforge refuses more than 500 scans
    rs = np.random.RandomState(6)
    prog = jpeg_bytes(Image.fromarray(rs.randint(0, 256, (16, 16, 3)).astype(np.uint8)),
                      quality=90, progressive=True)
    last_scan = prog[prog.rindex(b"\xff\xda"):-2]
    write_bytes("many_scans.jpg", prog[:-2] + last_scan * 500 + prog[-2:])
    out = io.BytesIO()
    Image.new("P", (4, 4)).save(out, "GIF")
    write_bytes("anim.gif", out.getvalue())


def check_pil_refuses_broken():
    """The broken files are broken for PIL too (except the formats PIL reads and we do not)."""
    for name in ["truncated.jpg", "truncated_eoi.jpg", "truncated.png", "empty.jpg", "text.jpg"]:
        try:
            Image.open(path(name)).convert("RGB")
        except Exception:
            continue
        sys.exit(f"make_image_fixtures.py: PIL decodes {name}, which should be broken")


def make_expected():
    names = sorted(n for n in os.listdir(ROOT) if n.endswith((".jpg", ".png")))
    for name in names:
        if name in {"truncated.jpg", "truncated_eoi.jpg", "truncated.png", "empty.jpg",
                    "text.jpg", "huge_side.png", "huge_area.jpg", "many_scans.jpg"}:
            continue
        im = Image.open(path(name))
        mode = "L" if name in GREY_DECODES else "RGB"
        save_npy(name + ".decoded.npy", np.array(im.convert(mode)))

    for name, case, size, interp, crop, grey in PIPELINES:
        steps = []
        if grey:
            steps.append(transforms.Grayscale())
        if size is not None:
            steps.append(transforms.Resize(size, interpolation=INTERPOLATION[interp]))
        steps += [transforms.CenterCrop(crop), transforms.ToTensor()]
        if grey:
            steps.append(transforms.Normalize([0.5], [0.5]))
        else:
            steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
        tensor = transforms.Compose(steps)(default_loader(path(name)))
        assert tensor.dtype == torch.float32
        save_npy(f"{name}.{case}.npy", tensor.numpy())

    for name, case, size, interp in RESIZES:
        im = default_loader(path(name))
        save_npy(f"{name}.{case}.npy", np.array(im.resize(size, PIL_FILTER[interp])))


def main():
    # convert('RGB') of palette.png drops its tRNS, as intended; PIL warns about exactly that
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    make_images()
    make_broken()
    check_pil_refuses_broken()
    make_expected()
    total = sum(os.path.getsize(path(n)) for n in os.listdir(ROOT))
    print(f"wrote {len(os.listdir(ROOT))} files, {total} bytes, to {ROOT}")


if __name__ == "__main__":
    main()
