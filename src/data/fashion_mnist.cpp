// Fashion-MNIST: gzip'd IDX files -> ImageSet, with a fixed train/validation split of the train
// file.
#include <zlib.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "edgeforge/data.h"
#include "edgeforge/error.h"

namespace edgeforge {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr int64_t kFashionMnistClasses = 10;
constexpr int64_t kFashionMnistSide = 28;
constexpr const char* kInstallHint = "install the Debian package dataset-fashion-mnist "
                                     "(scripts/setup does)";

std::string read_file_bytes(const std::string& path) {
  EF_CHECK(std::filesystem::is_regular_file(path), "fashion-mnist: file '", path,
           "' not found; ", kInstallHint);
  std::ifstream in(path, std::ios::binary);
  EF_CHECK(in.good(), "fashion-mnist: cannot open '", path, "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The first bytes of a gzip stream, inflated: at most `limit` of them. zlib's gzread would pass
// a plain file through unchanged and stop quietly at a truncated stream, so the stream is
// inflated by hand and both are reported. *more is set when the stream holds more than
// `limit` bytes, which are never inflated: an IDX file is read as its header, then only as
// much as the header promises, so a small file cannot expand to gigabytes first.
std::string gunzip_prefix(const std::string& gz, const std::string& path, size_t limit, bool* more) {
  EF_CHECK(gz.size() >= 18 && static_cast<unsigned char>(gz[0]) == 0x1f &&
               static_cast<unsigned char>(gz[1]) == 0x8b,
           "fashion-mnist: file '", path, "' is not gzip (expected the bytes 1f 8b first)");
  std::string out;
  // Grown as the stream inflates (doubling from 64 kB), never past limit + 1.
  out.resize(std::min<size_t>(limit + 1, 1 << 16));
  z_stream zs{};
  EF_ASSERT(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(gz.size(), UINT32_MAX));
  int rc = Z_OK;
  size_t produced = 0;
  while (rc == Z_OK && produced <= limit) {
    if (produced == out.size()) out.resize(std::min(out.size() * 2, limit + 1));
    zs.next_out = reinterpret_cast<Bytef*>(&out[produced]);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    // Z_BUF_ERROR with input left means only that the output buffer was full.
    if (rc == Z_BUF_ERROR && zs.avail_in > 0 && zs.avail_out == 0) rc = Z_OK;
  }
  const std::string zmsg = zs.msg != nullptr ? zs.msg : "";
  inflateEnd(&zs);
  *more = produced > limit;
  EF_CHECK(*more || rc == Z_STREAM_END, "fashion-mnist: file '", path,
           "' is a corrupt or truncated gzip", zmsg.empty() ? std::string() : " (" + zmsg + ")");
  out.resize(std::min(produced, limit));
  return out;
}

uint32_t read_be32(const std::string& b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + at;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Checks an IDX header; returns its dimensions.
std::vector<int64_t> idx_dims(const std::string& raw, const std::string& path, uint32_t magic,
                              size_t rank) {
  const size_t header = 4 + 4 * rank;
  EF_CHECK(raw.size() >= 4, "fashion-mnist: file '", path, "' is too short for an IDX header");
  const uint32_t found = read_be32(raw, 0);
  EF_CHECK(found == magic, "fashion-mnist: file '", path, "' has IDX magic ", hex32(found),
           ", expected ", hex32(magic));
  EF_CHECK(raw.size() >= header, "fashion-mnist: file '", path, "' is truncated inside its ",
           header, "-byte IDX header");
  std::vector<int64_t> dims;
  int64_t expected = 1;
  for (size_t i = 0; i < rank; ++i) {
    dims.push_back(read_be32(raw, 4 + 4 * i));
    // Each size is below 2^32 and a corrupt header may multiply past int64: saturate.
    constexpr int64_t kHuge = int64_t{1} << 62;
    expected = dims.back() != 0 && expected > kHuge / dims.back() ? kHuge : expected * dims.back();
  }
  const auto payload = static_cast<int64_t>(raw.size() - header);
  EF_CHECK(payload == expected, "fashion-mnist: file '", path, "' header promises ", expected,
           " bytes of data, the file holds ", payload,
           payload < expected ? " (truncated)" : " (trailing bytes)");
  return dims;
}

// splitmix64: a well-mixed hash of the index, so the validation images are spread evenly over
// the file and its class order rather than being one contiguous block.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// true for the train-file indices held out for validation: the n/12 with the smallest hash.
std::vector<bool> validation_mask(int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t held = n / kFashionMnistValidationDivisor;
  std::nth_element(order.begin(), order.begin() + held, order.end(), [](int64_t a, int64_t b) {
    return splitmix64(static_cast<uint64_t>(a)) < splitmix64(static_cast<uint64_t>(b));
  });
  std::vector<bool> mask(static_cast<size_t>(n), false);
  for (int64_t i = 0; i < held; ++i) mask[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  return mask;
}

}  // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                 "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

// The inflated IDX file at `path` (gzip'd) and its dimensions: the header is inflated and
// checked first, then exactly the data it promises (kMaxIdxBytes at most) plus one byte to see
// trailing data.
std::string read_idx_gz(const std::string& path, uint32_t magic, size_t rank,
                        std::vector<int64_t>* dims) {
  constexpr int64_t kMaxIdxBytes = int64_t{1} << 30;
  const std::string gz = read_file_bytes(path);
  const size_t header = 4 + 4 * rank;
  bool more = false;
  const std::string head = gunzip_prefix(gz, path, header, &more);
  EF_CHECK(head.size() >= 4, "fashion-mnist: file '", path, "' is too short for an IDX header");
  EF_CHECK(read_be32(head, 0) == magic, "fashion-mnist: file '", path, "' has IDX magic ",
           hex32(read_be32(head, 0)), ", expected ", hex32(magic));
  EF_CHECK(head.size() == header, "fashion-mnist: file '", path, "' is truncated inside its ",
           header, "-byte IDX header");
  int64_t promised = 1;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t d = read_be32(head, 4 + 4 * i);
    EF_CHECK(d == 0 || promised <= kMaxIdxBytes / d, "fashion-mnist: file '", path,
             "' header promises more than ", kMaxIdxBytes, " bytes of data (the limit)");
    promised *= d;
  }
  const std::string raw = gunzip_prefix(gz, path, header + static_cast<size_t>(promised) + 1, &more);
  EF_CHECK(!more && raw.size() <= header + static_cast<size_t>(promised), "fashion-mnist: file '",
           path, "' header promises ", promised, " bytes of data, the file holds more (trailing bytes)");
  *dims = idx_dims(raw, path, magic, rank);  // truncated data
  return raw;
}

ImageSet read_idx_pair(const std::string& images_gz_path, const std::string& labels_gz_path) {
  std::vector<int64_t> idims, ldims;
  const std::string images_raw = read_idx_gz(images_gz_path, kIdxImagesMagic, 3, &idims);
  const std::string labels_raw = read_idx_gz(labels_gz_path, kIdxLabelsMagic, 1, &ldims);
  EF_CHECK(idims[0] == ldims[0], "fashion-mnist: file '", images_gz_path, "' holds ", idims[0],
           " images but '", labels_gz_path, "' holds ", ldims[0], " labels");

  ImageSet set;
  set.images = at::empty(idims, at::kByte);
  std::memcpy(set.images.data_ptr<uint8_t>(), images_raw.data() + 16,
              static_cast<size_t>(set.images.numel()));
  set.labels = at::empty({ldims[0]}, at::kLong);
  auto* labels = set.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < ldims[0]; ++i) {
    const auto label = static_cast<unsigned char>(labels_raw[static_cast<size_t>(8 + i)]);
    EF_CHECK(label < kFashionMnistClasses, "fashion-mnist: file '", labels_gz_path, "' item ", i,
             " has label ", int{label}, ", expected 0..", kFashionMnistClasses - 1);
    labels[i] = label;
  }
  set.class_names = fashion_mnist_class_names();
  return set;
}

std::string fashion_mnist_dir(const FashionMnistOptions& opts) {
  if (!opts.dir.empty()) return opts.dir;
  const char* env = std::getenv("EDGEFORGE_FASHION_MNIST_DIR");
  if (env != nullptr && *env != '\0') return env;
  return kFashionMnistPackageDir;
}

ImageSet load_fashion_mnist(const std::string& split, const FashionMnistOptions& opts) {
  EF_CHECK(split == "train" || split == "validation" || split == "test",
           "fashion-mnist: unknown split '", split, "'; expected train, validation or test");
  EF_CHECK(opts.limit >= 0, "fashion-mnist: limit ", opts.limit, " is negative; 0 keeps all");
  const std::string dir = fashion_mnist_dir(opts);
  EF_CHECK(std::filesystem::is_directory(dir), "fashion-mnist: folder '", dir, "' not found; ",
           kInstallHint);
  const std::string prefix = dir + (split == "test" ? "/t10k" : "/train");
  ImageSet set = read_idx_pair(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz");
  EF_CHECK(set.images.size(1) == kFashionMnistSide && set.images.size(2) == kFashionMnistSide,
           "fashion-mnist: file '", prefix, "-images-idx3-ubyte.gz' holds ", set.images.size(1),
           "x", set.images.size(2), " images, expected 28x28");

  if (split != "test") {
    const auto mask = validation_mask(set.images.size(0));
    std::vector<int64_t> keep;
    for (size_t i = 0; i < mask.size(); ++i)
      if (mask[i] == (split == "validation")) keep.push_back(static_cast<int64_t>(i));
    auto index = at::tensor(keep, at::kLong);
    set.images = set.images.index_select(0, index);
    set.labels = set.labels.index_select(0, index);
  }
  if (opts.limit > 0 && opts.limit < set.images.size(0)) {
    set.images = set.images.narrow(0, 0, opts.limit).contiguous();
    set.labels = set.labels.narrow(0, 0, opts.limit).contiguous();
  }
  return set;
}

at::Tensor normalize_images(const at::Tensor& images_u8) {
  EF_CHECK(images_u8.scalar_type() == at::kByte && images_u8.dim() == 3,
           "normalize_images: expected uint8 [N,H,W], got ", images_u8.scalar_type(), " of rank ",
           images_u8.dim());
  return ((images_u8.to(at::kFloat) / 255.0 - kFashionMnistMean) / kFashionMnistStd).unsqueeze(1);
}

}  // namespace edgeforge
