// Tests of image decoding and preprocessing (src/data/image_io.cpp) against what PIL 9.4 and
// torchvision 0.14 compute, recorded in tests/data/fixtures/images/ by
// tests/data/make_image_fixtures.py (no Python is needed to run them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../../src/data/image_io.h"
#include "edgeforge/error.h"

using namespace edgeforge;
using namespace edgeforge::image;

namespace {

const std::string kImages = std::string(EDGEFORGE_TEST_DATA_DIR) + "/fixtures/images/";

// Largest |edgeforge - torchvision| allowed after Normalize. The pipeline is bit-exact (same
// libjpeg, PIL's fixed-point resampling, ToTensor's division by 255, float32 Normalize), so
// this is 0; one uint8 step would show as 1/255/0.225 = 0.0174.
constexpr float kTorchvisionMaxAbsDiff = 0.0f;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A .npy file as numpy.save writes it (format 1.0, little-endian, C order).
struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::string data;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  const uint8_t* u8() const { return reinterpret_cast<const uint8_t*>(data.data()); }
  std::vector<float> f32() const {
    std::vector<float> out(static_cast<size_t>(count()));
    std::memcpy(out.data(), data.data(), out.size() * sizeof(float));
    return out;
  }
};

Npy load_npy(const std::string& name) {
  const std::string bytes = read_bytes(kImages + name);
  Npy npy;
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    ADD_FAILURE() << name << " is not a .npy file";
    return npy;
  }
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  const size_t d = header.find("'descr': '") + 10;
  npy.descr = header.substr(d, header.find('\'', d) - d);
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << name;
  const size_t s = header.find("'shape': (") + 10;
  const std::string dims = header.substr(s, header.find(')', s) - s);
  for (size_t i = 0; i < dims.size();) {
    const size_t comma = dims.find(',', i);
    const std::string item =
        dims.substr(i, comma == std::string::npos ? std::string::npos : comma - i);
    if (item.find_first_of("0123456789") != std::string::npos)
      npy.shape.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    i = comma + 1;
  }
  npy.data = bytes.substr(10 + header_len);
  const int64_t item = npy.descr == "<f4" ? 4 : 1;
  EXPECT_EQ(static_cast<int64_t>(npy.data.size()), npy.count() * item) << name;
  return npy;
}

Image load(const std::string& name) { return read_image(kImages + name); }

// The uint8 pixels must equal PIL's, counted so a failure says how far off they are.
void expect_pixels_equal(const Image& got, const Npy& want, const std::string& label) {
  const int64_t channels = want.shape.size() == 3 ? want.shape[2] : 1;
  ASSERT_EQ(want.descr, "|u1") << label;
  ASSERT_EQ(got.height, want.shape[0]) << label;
  ASSERT_EQ(got.width, want.shape[1]) << label;
  ASSERT_EQ(got.channels, channels) << label;
  ASSERT_EQ(static_cast<int64_t>(got.pixels.size()), want.count()) << label;
  int64_t differing = 0;
  int max_diff = 0;
  for (int64_t i = 0; i < want.count(); ++i) {
    const int diff = std::abs(int{got.pixels[i]} - int{want.u8()[i]});
    differing += diff != 0;
    max_diff = std::max(max_diff, diff);
  }
  EXPECT_EQ(differing, 0) << label << ": " << differing << " of " << want.count()
                          << " bytes differ, by at most " << max_diff;
}

struct DecodeCase {
  const char* file;
  int64_t channels;  // 1 where PIL's image is grey (L, LA, 1, I)
};

const DecodeCase kDecodeCases[] = {
    {"photo.jpg", 3},      {"photo_444.jpg", 3}, {"photo_422.jpg", 3},    {"progressive.jpg", 3},
    {"grey.jpg", 1},       {"cmyk.jpg", 3},      {"exif_rotated.jpg", 3}, {"rgba.png", 3},
    {"la.png", 1},         {"la16.png", 1},      {"palette.png", 3},      {"palette4.png", 3},
    {"grey16.png", 1},     {"rgb16.png", 3},     {"grey1.png", 1},        {"grey2.png", 1},
    {"interlaced.png", 3}, {"tiny.png", 3},
};

TEST(ImageIo, DecodesExactlyAsPil) {
  for (const DecodeCase& c : kDecodeCases) {
    const Image img = load(c.file);
    EXPECT_EQ(img.channels, c.channels) << c.file;
    expect_pixels_equal(img, load_npy(std::string(c.file) + ".decoded.npy"), c.file);
  }
}

TEST(ImageIo, IgnoresExifOrientationAsPilOpenDoes) {
  const Image img = load("exif_rotated.jpg");  // orientation 6 would make it 101 wide
  EXPECT_EQ(img.width, 151);
  EXPECT_EQ(img.height, 101);
}

TEST(ImageIo, DecodesBySignatureNotByName) {
  const std::string png = read_bytes(kImages + "tiny.png");
  const Image img = decode(png, "really_a_png.jpg");
  EXPECT_EQ(img.width, 7);
  EXPECT_EQ(img.height, 5);
}

struct PipelineCase {
  const char* file;
  const char* name;
  int64_t resize;  // 0: no Resize
  Filter filter;
  int64_t crop_h, crop_w;
  bool grey;
};

// The same cases as PIPELINES in make_image_fixtures.py.
const PipelineCase kPipelines[] = {
    {"photo.jpg", "r256c224_bilinear", 256, Filter::kBilinear, 224, 224, false},
    {"photo.jpg", "r48c40_bicubic", 48, Filter::kBicubic, 40, 40, false},
    {"photo.jpg", "r48c40_nearest", 48, Filter::kNearest, 40, 40, false},
    {"photo.jpg", "r64c59x95_bilinear", 64, Filter::kBilinear, 59, 95, false},
    {"photo.jpg", "grey_r32c28", 32, Filter::kBilinear, 28, 28, true},
    {"photo_444.jpg", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"photo_422.jpg", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"progressive.jpg", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"grey.jpg", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"grey.jpg", "grey_r32c28", 32, Filter::kBilinear, 28, 28, true},
    {"cmyk.jpg", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"rgba.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"la.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"palette.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"grey16.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"rgb16.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"interlaced.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"tiny.png", "r48c40_bilinear", 48, Filter::kBilinear, 40, 40, false},
    {"tiny.png", "r48c40_bicubic", 48, Filter::kBicubic, 40, 40, false},
    {"tiny.png", "c9x10", 0, Filter::kBilinear, 9, 10, false},
    {"tiny.png", "c4x10", 0, Filter::kBilinear, 4, 10, false},
};

// default_loader, [Grayscale], [Resize], CenterCrop, ToTensor, Normalize.
std::vector<float> run_pipeline(const PipelineCase& c) {
  Image img = to_rgb(load(c.file));
  NormalizeOptions norm;
  if (c.grey) {
    img = to_grey(img);
    norm.mean = {0.5f, 0.5f, 0.5f};
    norm.std = {0.5f, 0.5f, 0.5f};
  }
  if (c.resize > 0) img = resize_shorter_side(img, c.resize, c.filter);
  img = center_crop(img, c.crop_h, c.crop_w);
  std::vector<float> out(static_cast<size_t>(img.height * img.width * img.channels));
  normalize_into(img, norm, out.data());
  return out;
}

TEST(ImageIo, PreprocessingMatchesTorchvision) {
  for (const PipelineCase& c : kPipelines) {
    const std::string label = std::string(c.file) + " " + c.name;
    const Npy want = load_npy(std::string(c.file) + "." + c.name + ".npy");
    ASSERT_EQ(want.descr, "<f4") << label;
    ASSERT_EQ(want.shape.size(), 3u) << label;
    EXPECT_EQ(want.shape[0], c.grey ? 1 : 3) << label;
    EXPECT_EQ(want.shape[1], c.crop_h) << label;
    EXPECT_EQ(want.shape[2], c.crop_w) << label;
    const std::vector<float> got = run_pipeline(c);
    const std::vector<float> expected = want.f32();
    ASSERT_EQ(got.size(), expected.size()) << label;
    float max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i)
      max_diff = std::max(max_diff, std::abs(got[i] - expected[i]));
    EXPECT_LE(max_diff, kTorchvisionMaxAbsDiff) << label;
  }
}

struct ResizeCase {
  const char* file;
  const char* name;
  int64_t out_w, out_h;
  Filter filter;
};

// The same cases as RESIZES in make_image_fixtures.py.
const ResizeCase kResizes[] = {
    {"photo.jpg", "resize_360x70_bicubic", 360, 70, Filter::kBicubic},
    {"photo.jpg", "resize_19x13_bilinear", 19, 13, Filter::kBilinear},
    {"photo.jpg", "resize_41x29_nearest", 41, 29, Filter::kNearest},
    {"photo.jpg", "resize_300x77_bilinear", 300, 77, Filter::kBilinear},
    {"photo.jpg", "resize_97x200_bicubic", 97, 200, Filter::kBicubic},
    {"tiny.png", "resize_23x17_nearest", 23, 17, Filter::kNearest},
    {"tiny.png", "resize_31x11_bicubic", 31, 11, Filter::kBicubic},
};

TEST(ImageIo, ResizeMatchesPilBitForBit) {
  for (const ResizeCase& c : kResizes) {
    const Image img = resize(to_rgb(load(c.file)), c.out_h, c.out_w, c.filter);
    expect_pixels_equal(img, load_npy(std::string(c.file) + "." + c.name + ".npy"),
                        std::string(c.file) + " " + c.name);
  }
}

TEST(ImageIo, ResizeToTheSameSizeCopies) {
  const Image img = load("tiny.png");
  for (Filter f : {Filter::kBilinear, Filter::kBicubic, Filter::kNearest}) {
    EXPECT_EQ(resize(img, img.height, img.width, f).pixels, img.pixels);
  }
}

TEST(ImageIo, ResizeShorterSideFollowsTorchvision) {
  Image img;
  img.height = 375;
  img.width = 500;
  img.channels = 1;
  img.pixels.assign(375 * 500, 7);
  const Image landscape = resize_shorter_side(img, 256, Filter::kBilinear);
  EXPECT_EQ(landscape.height, 256);
  EXPECT_EQ(landscape.width, 341);  // int(256 * 500 / 375) = int(341.33)
  std::swap(img.height, img.width);
  const Image portrait = resize_shorter_side(img, 256, Filter::kBilinear);
  EXPECT_EQ(portrait.height, 341);
  EXPECT_EQ(portrait.width, 256);
  EXPECT_EQ(portrait.pixels, std::vector<uint8_t>(256 * 341, 7));  // a flat image stays flat
}

TEST(ImageIo, GreyConversionsFollowPil) {
  Image rgb;
  rgb.height = 1;
  rgb.width = 4;
  rgb.channels = 3;
  rgb.pixels = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30};
  const Image grey = to_grey(rgb);
  // (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{76, 150, 29, 124}));
  const Image back = to_rgb(grey);
  EXPECT_EQ(back.pixels,
            (std::vector<uint8_t>{76, 76, 76, 150, 150, 150, 29, 29, 29, 124, 124, 124}));
  EXPECT_EQ(to_grey(grey).pixels, grey.pixels);
  EXPECT_EQ(to_rgb(rgb).pixels, rgb.pixels);
}

TEST(ImageIo, NormalizeLayoutsAndChannelOrder) {
  const Image img = center_crop(load("tiny.png"), 5, 7);
  const int64_t hw = 5 * 7;
  std::vector<float> chw(static_cast<size_t>(hw * 3)), hwc(chw.size()), bgr(chw.size()),
      bgr_hwc(chw.size());
  NormalizeOptions opts;
  normalize_into(img, opts, chw.data());
  opts.nhwc = true;
  normalize_into(img, opts, hwc.data());
  opts.bgr = true;
  normalize_into(img, opts, bgr_hwc.data());
  opts.nhwc = false;
  normalize_into(img, opts, bgr.data());
  for (int64_t i = 0; i < hw; ++i) {
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(hwc[i * 3 + c], chw[c * hw + i]);
      EXPECT_EQ(bgr[(2 - c) * hw + i], chw[c * hw + i]);  // mean/std stay with their colour
      EXPECT_EQ(bgr_hwc[i * 3 + 2 - c], chw[c * hw + i]);
    }
  }
  EXPECT_EQ(chw[0], (img.pixels[0] / 255.0f - 0.485f) / 0.229f);

  NormalizeOptions raw;  // a scale that is no integer's reciprocal is multiplied
  raw.scale = 0.75f;
  raw.mean = {1.0f, 2.0f, 3.0f};
  raw.std = {2.0f, 4.0f, 8.0f};
  normalize_into(img, raw, chw.data());
  EXPECT_EQ(chw[hw], (img.pixels[1] * 0.75f - 2.0f) / 4.0f);

  const Image grey = to_grey(img);
  std::vector<float> one(static_cast<size_t>(hw));
  normalize_into(grey, NormalizeOptions{}, one.data());
  EXPECT_EQ(one[3], (grey.pixels[3] / 255.0f - 0.485f) / 0.229f);
}

TEST(ImageIo, CenterCropRoundsHalvesToEvenAndPads) {
  Image img;
  img.height = 6;
  img.width = 4;
  img.channels = 1;
  for (int i = 0; i < 24; ++i) img.pixels.push_back(static_cast<uint8_t>(i + 1));
  // height 6 - 1 = 5: round(2.5) = 2; width 4 - 3 = 1: round(0.5) = 0
  const Image a = center_crop(img, 1, 3);
  EXPECT_EQ(a.pixels, (std::vector<uint8_t>{9, 10, 11}));
  // height 6 - 3 = 3: round(1.5) = 2; width 4 + 3: pad 1 left, 2 right
  const Image b = center_crop(img, 3, 7);
  EXPECT_EQ(b.pixels, (std::vector<uint8_t>{0,  9, 10, 11, 12, 0,  0,  0,  13, 14, 15,
                                            16, 0, 0,  0,  17, 18, 19, 20, 0,  0}));
}

struct BrokenCase {
  const char* file;
  const char* problem;
};

const BrokenCase kBroken[] = {
    {"truncated.jpg", "JPEG is truncated"},
    {"truncated_eoi.jpg", "JPEG is truncated"},
    {"truncated.png", "PNG is truncated"},
    {"empty.jpg", "file is empty"},
    {"text.jpg", "not a JPEG or PNG file (it starts with bytes 74 68 69 73"},
    {"huge_side.png", "is 40000x8 pixels; edgeforge refuses more than 32768 a side"},
    {"huge_area.jpg", "is 20000x20000 pixels; edgeforge refuses"},
    {"anim.gif", "is a GIF image; edgeforge reads only JPEG and PNG"},
    {"many_scans.jpg", "cannot decode JPEG: more than 500 progressive scans"},
    {"no_such_file.jpg", "cannot open file (No such file or directory)"},
    {"", "cannot read file (Is a directory)"},  // the fixture folder itself
};

std::string error_of(const std::string& path) {
  try {
    read_image(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no edgeforge::Error>";
}

TEST(ImageIo, BrokenFilesThrowOneLineNamingTheFile) {
  for (const BrokenCase& c : kBroken) {
    const std::string path = kImages + c.file;
    const std::string message = error_of(path);
    EXPECT_EQ(message.rfind("image '" + path + "': ", 0), 0u) << message;
    EXPECT_NE(message.find(c.problem), std::string::npos) << c.file << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(ImageIo, TruncatedSignaturesAreTruncatedFiles) {
  EXPECT_THROW(decode(std::string("\xff\xd8", 2), "a.jpg"), Error);
  EXPECT_THROW(decode(std::string("\x89PN", 3), "a.png"), Error);
  try {
    decode(std::string("\x89PN", 3), "a.png");
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "image 'a.png': PNG is truncated (the file ends early)");
  }
}

TEST(ImageIo, BadArgumentsThrow) {
  const Image img = load("tiny.png");
  EXPECT_THROW(resize(img, 0, 5, Filter::kBilinear), Error);
  EXPECT_THROW(resize_shorter_side(img, -1, Filter::kBilinear), Error);
  EXPECT_THROW(center_crop(img, 0, 3), Error);
  EXPECT_THROW(to_rgb(Image{}), Error);
  NormalizeOptions zero_std;
  zero_std.std[1] = 0.0f;
  std::vector<float> out(static_cast<size_t>(5 * 7 * 3));
  EXPECT_THROW(normalize_into(img, zero_std, out.data()), Error);
}

// Deterministic mutations of valid files: every one must give an Image or an edgeforge::Error
// (clean under valgrind and -fsanitize=address,undefined when written, as were 18000 more).
TEST(ImageIo, MutatedFilesGiveAnImageOrAnError) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int images = 0, errors = 0;
  for (const char* file : {"photo.jpg", "progressive.jpg", "rgba.png", "interlaced.png"}) {
    const std::string original = read_bytes(kImages + file);
    for (int i = 0; i < 75; ++i) {
      std::string bytes = original;
      switch (i % 3) {
        case 0:  // truncation anywhere, headers included
          bytes.resize(next() % bytes.size());
          break;
        case 1:  // a few flipped bits
          for (int f = 0; f < 1 + i % 4; ++f)
            bytes[next() % bytes.size()] ^= static_cast<char>(1 << (next() % 8));
          break;
        default:  // a run of overwritten bytes, more often near the headers
          const size_t at = next() % (i % 2 ? bytes.size() : std::min<size_t>(bytes.size(), 700));
          for (size_t j = at; j < std::min(bytes.size(), at + 1 + next() % 16); ++j)
            bytes[j] = static_cast<char>(next());
      }
      const std::string what = std::string(file) + " mutation " + std::to_string(i);
      try {
        const Image img = decode(bytes, what);
        EXPECT_EQ(static_cast<int64_t>(img.pixels.size()), img.height * img.width * img.channels);
        ++images;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        ++errors;
      }
    }
  }
  EXPECT_EQ(images + errors, 300);
  EXPECT_GT(errors, 0);
  EXPECT_GT(images, 0);  // flipped bits in entropy-coded data still decode, as in PIL
}

TEST(ImageIo, JpegDctScalingIsOptInAndClose) {
  const std::string bytes = read_bytes(kImages + "photo.jpg");  // 300x200
  DecodeOptions fast;
  fast.jpeg_min_shorter_side = 100;
  const Image half = decode(bytes, "photo.jpg", fast);
  EXPECT_EQ(half.width, 150);
  EXPECT_EQ(half.height, 100);
  fast.jpeg_min_shorter_side = 101;  // 200 < 2 * 101: full size, exact
  const Image full = decode(bytes, "photo.jpg", fast);
  EXPECT_EQ(full.pixels, decode(bytes, "photo.jpg").pixels);

  // Resize(48) + CenterCrop(40) from the half-size decode against the exact pipeline.
  const Image exact = center_crop(resize_shorter_side(full, 48, Filter::kBilinear), 40, 40);
  const Image approx = center_crop(resize_shorter_side(half, 48, Filter::kBilinear), 40, 40);
  ASSERT_EQ(exact.pixels.size(), approx.pixels.size());
  int max_diff = 0;
  double sum = 0;
  for (size_t i = 0; i < exact.pixels.size(); ++i) {
    const int d = std::abs(int{exact.pixels[i]} - int{approx.pixels[i]});
    max_diff = std::max(max_diff, d);
    sum += d;
  }
  const double mean_diff = sum / static_cast<double>(exact.pixels.size());
  EXPECT_GT(max_diff, 0);  // it does change pixels: that is why it is not the default
  EXPECT_LT(mean_diff, 3.0);
  EXPECT_LE(max_diff, 64);
}

}  // namespace
