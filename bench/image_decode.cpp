// Benchmark: one JPEG through torchvision's evaluation preprocessing (src/data/image_io.h) on
// one thread: decode, Resize(256) + CenterCrop(224), Normalize into a 3x224x224 float tensor,
// each step and the whole; then the same with the opt-in DCT-scaled decode
// (DecodeOptions::jpeg_min_shorter_side = 256), and how much that changes the 224x224 crop
// against the exact path. Google Benchmark, the cases' repetitions randomly interleaved in one
// run, timed in this thread's CPU time (on a shared machine other processes then add less
// noise; the work is single-threaded, so wall time agrees on an idle one). Prints the ratio
// fast / exact per step and image.
//
//   build/image_decode [--file photo.jpg ...] [Google Benchmark flags: --json out.json ...]
// Without --file it encodes two synthetic photo-like JPEGs at quality 90 (4:2:0) with libjpeg:
// 500x375, ImageNet's typical size, where the fast mode does not apply (375 < 2 * 256), and
// 1000x750, where it decodes at 1/2.
// Cases: decode|resize_crop|pipeline/exact|fast/<image> and normalize/<image>; counters
// images/s and, for decode and pipeline, the JPEG's bytes/s.
#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including them

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src/data/image_io.h"
#include "bench_util.h"

namespace img = edgeforge::image;
namespace bench = edgeforge::bench;

namespace {

constexpr int64_t kResize = 256;
constexpr int64_t kCrop = 224;

// Gradients, hard edges, fine texture and sensor-like noise, so the entropy-coded size per pixel
// is close to a photo's (about 2-3 bits per pixel at quality 90).
std::string synthetic_jpeg(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  uint64_t s = 0x2545F4914F6CDD1Dull;
  auto noise = [&s]() {
    int sum = 0;
    for (int i = 0; i < 4; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      sum += static_cast<int>(s & 0xff);
    }
    return (sum - 510) / 24.0;
  };
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double fx = static_cast<double>(x) / width, fy = static_cast<double>(y) / height;
      double r = 128 + 90 * std::sin(x / 17.0) * std::cos(y / 23.0);
      double g = 255 * fx;
      double b = 255 * fy;
      if ((fx - 0.6) * (fx - 0.6) + (fy - 0.4) * (fy - 0.4) < 0.04) r = 230, g = 40, b = 30;
      if (fx > 0.1 && fx < 0.3 && fy > 0.55) g = 190 + 40 * std::sin(x * 1.3) * std::sin(y * 0.9);
      const double v[3] = {r + noise(), g + noise(), b + noise()};
      for (int c = 0; c < 3; ++c) {
        rgb[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(std::clamp(std::lround(v[c]), 0L, 255L));
      }
    }
  }
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // exits on error: acceptable in a benchmark's own encoder
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = &rgb[static_cast<size_t>(cinfo.next_scanline) * width * 3];
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

img::Image resize_crop(const img::Image& rgb) {
  return img::center_crop(img::resize_shorter_side(rgb, kResize, img::Filter::kBilinear), kCrop,
                          kCrop);
}

// The whole pipeline as a data loader runs it (to_rgb moves an RGB image, it does not copy).
void pipeline(const std::string& bytes, const std::string& label, const img::DecodeOptions& opt,
              float* out) {
  img::normalize_into(resize_crop(img::to_rgb(img::decode(bytes, label, opt))),
                      img::NormalizeOptions{}, out);
}


// One JPEG and what each step starts from, on both paths.
struct Case {
  std::string id, bytes;
  img::Image decoded, cropped, small;  // small: the DCT-scaled decode
  img::DecodeOptions fast;
  std::vector<float> tensor = std::vector<float>(static_cast<size_t>(3 * kCrop * kCrop));

  Case(std::string name, std::string jpeg) : id(std::move(name)), bytes(std::move(jpeg)) {
    fast.jpeg_min_shorter_side = kResize;
    decoded = img::to_rgb(img::decode(bytes, id));
    cropped = resize_crop(decoded);
    small = img::to_rgb(img::decode(bytes, id, fast));
  }

  // How far the fast path's 224x224 crop is from the exact one.
  std::string difference() const {
    const img::Image fast_cropped = resize_crop(small);
    int max_diff = 0;
    double sum = 0;
    int64_t differing = 0;
    for (size_t i = 0; i < cropped.pixels.size(); ++i) {
      const int d = std::abs(int{cropped.pixels[i]} - int{fast_cropped.pixels[i]});
      max_diff = std::max(max_diff, d);
      sum += d;
      differing += d != 0;
    }
    const double n = static_cast<double>(cropped.pixels.size());
    char text[256];
    std::snprintf(text, sizeof text,
                  "%lldx%lld, %zu bytes; fast decodes %lldx%lld; fast vs exact 224x224x3 uint8: "
                  "%.1f%% differ, max %d, mean %.3f (max %.4f after Normalize with std 0.225)",
                  static_cast<long long>(decoded.width), static_cast<long long>(decoded.height),
                  bytes.size(), static_cast<long long>(small.width),
                  static_cast<long long>(small.height), 100.0 * differing / n, max_diff, sum / n,
                  max_diff / 255.0 / 0.225);
    return text;
  }
};

std::vector<std::unique_ptr<Case>> cases;  // alive until the run ends
std::vector<std::string> files;

template <class F>
void add(const std::string& name, const Case* c, bool count_bytes, F step) {
  benchmark::RegisterBenchmark((name + "/" + c->id).c_str(), [c, count_bytes, step](benchmark::State& state) {
    for (int i = 0; i < 3; ++i) step();  // caches refilled after the other cases
    for (auto _ : state) step();
    state.counters["images"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
    if (count_bytes) state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c->bytes.size()));
  })->Unit(benchmark::kMicrosecond);
}

void register_cases() {
  if (files.empty()) {
    cases.push_back(std::make_unique<Case>("synthetic_500x375_q90", synthetic_jpeg(500, 375)));
    cases.push_back(std::make_unique<Case>("synthetic_1000x750_q90", synthetic_jpeg(1000, 750)));
  }
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + f);
    std::string id = f.substr(f.find_last_of('/') + 1);
    cases.push_back(std::make_unique<Case>(
        id, std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())));
  }
  benchmark::AddCustomContext("threads", "1");
  for (const auto& owned : cases) {
    const Case* c = owned.get();
    Case* m = owned.get();  // the output tensor is written
    const std::string diff = c->difference();
    std::fprintf(bench::notes(), "%s: %s\n", c->id.c_str(), diff.c_str());
    benchmark::AddCustomContext("image " + c->id, diff);
    add("decode/exact", c, true, [c] { benchmark::DoNotOptimize(img::decode(c->bytes, c->id)); });
    add("decode/fast", c, true, [c] { benchmark::DoNotOptimize(img::decode(c->bytes, c->id, c->fast)); });
    add("resize_crop/exact", c, false, [c] { benchmark::DoNotOptimize(resize_crop(c->decoded)); });
    add("resize_crop/fast", c, false, [c] { benchmark::DoNotOptimize(resize_crop(c->small)); });
    add("normalize", c, false, [m] { img::normalize_into(m->cropped, {}, m->tensor.data()); });
    add("pipeline/exact", c, true, [m] { pipeline(m->bytes, m->id, {}, m->tensor.data()); });
    add("pipeline/fast", c, true, [m] { pipeline(m->bytes, m->id, m->fast, m->tensor.data()); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Suite suite;
  suite.name = "image_decode";
  suite.usage = "image_decode options: [--file photo.jpg ...]";
  suite.parse_options = [](const std::vector<std::string>& args) {
    return bench::each_option(args, [](const std::string& name, const std::string& value) {
      if (name != "--file") return false;
      files.push_back(value);
      return true;
    });
  };
  // This thread's CPU time: the cases are single-threaded (see the top).
  suite.comparisons = {{"fast", "exact", /*cpu_time=*/true}};
  suite.setup = register_cases;
  const int status = bench::run_benchmarks(argc, argv, suite);
  cases.clear();
  return status;
}
