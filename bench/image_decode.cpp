// Benchmark: one JPEG through torchvision's evaluation preprocessing (src/data/image_io.h) on
// one thread: decode, Resize(256) + CenterCrop(224), Normalize into a 3x224x224 float tensor.
// Prints the median ms per image of each step and of the whole, then the same with the opt-in
// DCT-scaled decode (DecodeOptions::jpeg_min_shorter_side = 256) and how much that changes the
// 224x224 crop against the exact path.
//
//   build/image_decode [--reps 300] [--file photo.jpg ...]
// Without --file it encodes two synthetic photo-like JPEGs at quality 90 (4:2:0) with libjpeg:
// 500x375, ImageNet's typical size, where the fast mode does not apply (375 < 2 * 256), and
// 1000x750, where it decodes at 1/2.
#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including them

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "../src/data/image_io.h"

namespace img = edgeforge::image;

namespace {

constexpr int64_t kResize = 256;
constexpr int64_t kCrop = 224;

// This thread's CPU time, not wall time: on a shared machine, other processes then add less
// noise (the work is single-threaded, so the two agree on an idle machine).
double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double median_ms(int reps, const std::function<void()>& f) {
  std::vector<double> ms;
  for (int i = 0; i < reps + 5; ++i) {
    const double t0 = thread_cpu_ms();
    f();
    const double t = thread_cpu_ms() - t0;
    if (i >= 5) ms.push_back(t);  // the first runs warm the caches
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

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

void run(const std::string& label, const std::string& bytes, int reps) {
  std::vector<float> tensor(static_cast<size_t>(3 * kCrop * kCrop));
  const img::NormalizeOptions norm;
  img::DecodeOptions fast;
  fast.jpeg_min_shorter_side = kResize;

  const img::Image decoded = img::to_rgb(img::decode(bytes, label));
  const img::Image cropped = resize_crop(decoded);
  const double t_decode = median_ms(reps, [&] { img::decode(bytes, label); });
  const double t_resize = median_ms(reps, [&] { resize_crop(decoded); });
  const double t_norm = median_ms(reps, [&] { img::normalize_into(cropped, norm, tensor.data()); });
  const double t_total = median_ms(reps, [&] { pipeline(bytes, label, {}, tensor.data()); });

  const img::Image small = img::to_rgb(img::decode(bytes, label, fast));
  const img::Image fast_cropped = resize_crop(small);
  const double f_decode = median_ms(reps, [&] { img::decode(bytes, label, fast); });
  const double f_resize = median_ms(reps, [&] { resize_crop(small); });
  const double f_total = median_ms(reps, [&] { pipeline(bytes, label, fast, tensor.data()); });

  int max_diff = 0;
  double sum = 0;
  int64_t differing = 0;
  for (size_t i = 0; i < cropped.pixels.size(); ++i) {
    const int d = std::abs(int{cropped.pixels[i]} - int{fast_cropped.pixels[i]});
    max_diff = std::max(max_diff, d);
    sum += d;
    differing += d != 0;
  }
  std::printf("%s: %lldx%lld, %zu bytes\n", label.c_str(), static_cast<long long>(decoded.width),
              static_cast<long long>(decoded.height), bytes.size());
  std::printf("  exact:      decode %.3f  resize+crop %.3f  normalize %.3f  total %.3f ms\n",
              t_decode, t_resize, t_norm, t_total);
  std::printf("  fast (DCT): decoded %lldx%lld  decode %.3f  resize+crop %.3f  total %.3f ms\n",
              static_cast<long long>(small.width), static_cast<long long>(small.height), f_decode,
              f_resize, f_total);
  std::printf(
      "  fast vs exact 224x224x3 uint8: %.1f%% differ, max %d, mean %.3f (max %.4f after "
      "Normalize with std 0.225)\n",
      100.0 * differing / static_cast<double>(cropped.pixels.size()), max_diff,
      sum / static_cast<double>(cropped.pixels.size()), max_diff / 255.0 / 0.225);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 300;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (a == "--file" && i + 1 < argc) {
      files.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: image_decode [--reps N] [--file photo.jpg ...]\n");
      return 2;
    }
  }
  try {
    if (files.empty()) {
      run("synthetic 500x375 q90", synthetic_jpeg(500, 375), reps);
      run("synthetic 1000x750 q90", synthetic_jpeg(1000, 750), reps);
    }
    for (const std::string& f : files) {
      std::ifstream in(f, std::ios::binary);
      run(f, std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
          reps);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image_decode: %s\n", e.what());
    return 1;
  }
  return 0;
}
