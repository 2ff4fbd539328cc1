// image_io: JPEG (libjpeg-turbo, libjpeg API) and PNG (libpng) decoding plus PIL-exact resizing,
// cropping and normalisation; see image_io.h.
//
// Why the libjpeg API and not TurboJPEG: PIL decodes JPEGs through this same libjpeg.so.62 with
// the libjpeg API and its defaults (ISLOW DCT, fancy upsampling, out_color_space JCS_RGB, or
// JCS_CMYK for 4-component files), so the same calls give PIL's pixels bit for bit. TurboJPEG's
// tjDecompress2 with flags 0 maps to the same defaults and gave the same pixels on the test
// images (TJFLAG_FASTUPSAMPLE changed 4:2:0 and 4:2:2 pixels by up to 93, TJFLAG_FASTDCT by up
// to 7), but it reports warnings only as "some warning happened" or stops on all of them, where
// PIL fails on a truncated file yet decodes corrupt-but-complete data; the libjpeg API tells the
// two apart by message code, and needs no second library.
//
// Both libraries report errors through a longjmp. Each call into them happens in a function
// that holds no object with a destructor (the longjmp would skip it); the state those
// functions fill lives in a job struct owned by the caller, whose destructor frees the
// library's state whichever way the call ended.
#include "image_io.h"

#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including them

#include <jpeglib.h>

#include <jerror.h>  // message codes: JWRN_JPEG_EOF
#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <utility>

#include "edgeforge/error.h"

namespace edgeforge::image {
namespace {

// A legitimate progressive JPEG has about ten scans; thousands make libjpeg spend seconds on a
// few kilobytes (libjpeg-turbo's TJFLAG_LIMITSCANS uses 500 for the same reason).
constexpr int kMaxJpegScans = 500;

[[noreturn]] void fail(const std::string& what, const std::string& problem) {
  throw Error(detail::concat("image '", what, "': ", problem));
}

void check_size(const std::string& what, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0)
    fail(what, detail::concat("has no pixels (", width, "x", height, ")"));
  if (width > kMaxImageSide || height > kMaxImageSide || width * height > kMaxImagePixels) {
    fail(what, detail::concat("is ", width, "x", height, " pixels; edgeforge refuses more than ",
                              kMaxImageSide, " a side or ", kMaxImagePixels, " pixels"));
  }
}

void check_image(const Image& image, const char* op) {
  EF_CHECK(
      image.height > 0 && image.width > 0 && (image.channels == 1 || image.channels == 3) &&
          static_cast<int64_t>(image.pixels.size()) == image.height * image.width * image.channels,
      "image::", op, ": expected a grey or RGB image with height*width*channels bytes, got ",
      image.height, "x", image.width, "x", image.channels, " with ", image.pixels.size(), " bytes");
}

Image make_image(int64_t height, int64_t width, int64_t channels) {
  Image out;
  out.height = height;
  out.width = width;
  out.channels = channels;
  out.pixels.resize(static_cast<size_t>(height * width * channels));
  return out;
}

// ---- JPEG ----------------------------------------------------------------------------------

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg hands back a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  bool truncated;
};

[[noreturn]] void jpeg_bail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// PIL raises on a truncated JPEG (jpeg_mem_src reports it as the warning JWRN_JPEG_EOF), and
// so do we. libjpeg's other warnings are about corrupt but complete data, which PIL decodes
// with the same library: those files decode here too, without the message libjpeg would print.
void jpeg_warn(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace output
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
    reinterpret_cast<JpegErrorManager*>(cinfo->err)->truncated = true;
    jpeg_bail(cinfo);
  }
  cinfo->err->num_warnings++;
}

void jpeg_limit_scans(j_common_ptr cinfo) {
  if (cinfo->is_decompressor &&
      reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    std::snprintf(err->message, sizeof(err->message),
                  "more than %d progressive scans (a normal JPEG has about 10)", kMaxJpegScans);
    std::longjmp(err->jump, 1);
  }
}

struct JpegJob {
  jpeg_decompress_struct cinfo{};
  JpegErrorManager err{};
  jpeg_progress_mgr progress{};
  std::vector<uint8_t> pixels;  // output_height * output_width * output_components
  JpegJob() = default;
  JpegJob(const JpegJob&) = delete;
  JpegJob& operator=(const JpegJob&) = delete;
  // Safe on a never-created or already-destroyed cinfo (cinfo.mem is null then).
  ~JpegJob() { jpeg_destroy_decompress(&cinfo); }
};

// Reads the header and chooses the output colour space and scale. False: see job.err.
bool jpeg_start(JpegJob& job, const std::string& bytes, int64_t min_shorter_side) {
  job.cinfo.err = jpeg_std_error(&job.err.pub);
  job.err.pub.error_exit = jpeg_bail;
  job.err.pub.emit_message = jpeg_warn;
  if (setjmp(job.err.jump)) return false;
  jpeg_create_decompress(&job.cinfo);
  job.progress.progress_monitor = jpeg_limit_scans;
  job.cinfo.progress = &job.progress;
  jpeg_mem_src(&job.cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&job.cinfo, TRUE);
  // PIL: one component is mode L, three are RGB, four are Adobe CMYK (libjpeg turns YCCK into
  // CMYK); anything else PIL refuses, and libjpeg fails on the conversion below.
  if (job.cinfo.num_components == 1) {
    job.cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (job.cinfo.num_components == 4) {
    job.cinfo.out_color_space = JCS_CMYK;
  } else {
    job.cinfo.out_color_space = JCS_RGB;
  }
  if (min_shorter_side > 0) {
    const int64_t shorter = std::min<int64_t>(job.cinfo.image_width, job.cinfo.image_height);
    for (int denom : {8, 4, 2}) {
      if (shorter >= denom * min_shorter_side) {
        job.cinfo.scale_num = 1;
        job.cinfo.scale_denom = static_cast<unsigned>(denom);
        break;
      }
    }
  }
  jpeg_calc_output_dimensions(&job.cinfo);
  return true;
}

// Decodes every scanline into job.pixels, already sized. False: see job.err.
bool jpeg_finish(JpegJob& job) {
  if (setjmp(job.err.jump)) return false;
  jpeg_start_decompress(&job.cinfo);
  const size_t stride = static_cast<size_t>(job.cinfo.output_width) *
                        static_cast<size_t>(job.cinfo.output_components);
  while (job.cinfo.output_scanline < job.cinfo.output_height) {
    JSAMPROW row = job.pixels.data() + stride * job.cinfo.output_scanline;
    jpeg_read_scanlines(&job.cinfo, &row, 1);
  }
  // Reads up to EOI, so that a file missing only its end is reported truncated, as PIL does.
  jpeg_finish_decompress(&job.cinfo);
  return true;
}

// PIL's "CMYK;I" unpacking (Adobe stores CMYK inverted) followed by its cmyk2rgb.
Image cmyk_to_rgb(const std::vector<uint8_t>& cmyk, int64_t height, int64_t width) {
  Image out = make_image(height, width, 3);
  const int64_t n = height * width;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = &cmyk[static_cast<size_t>(i * 4)];
    const int nk = p[3];  // 255 - (255 - k)
    for (int c = 0; c < 3; ++c) {
      const int tmp = (255 - p[c]) * nk + 128;
      const int v = nk - (((tmp >> 8) + tmp) >> 8);
      out.pixels[static_cast<size_t>(i * 3 + c)] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  return out;
}

Image decode_jpeg(const std::string& bytes, const std::string& what, const DecodeOptions& opt) {
  JpegJob job;
  auto jpeg_failure = [&]() {
    if (job.err.truncated) fail(what, detail::concat("JPEG is truncated (", job.err.message, ")"));
    fail(what, detail::concat("cannot decode JPEG: ", job.err.message));
  };
  if (!jpeg_start(job, bytes, opt.jpeg_min_shorter_side)) jpeg_failure();
  check_size(what, job.cinfo.image_width, job.cinfo.image_height);
  const int64_t height = job.cinfo.output_height, width = job.cinfo.output_width;
  const int64_t channels = job.cinfo.output_components;
  job.pixels.resize(static_cast<size_t>(height * width * channels));
  if (!jpeg_finish(job)) jpeg_failure();
  if (channels == 4) return cmyk_to_rgb(job.pixels, height, width);
  Image out;
  out.height = height;
  out.width = width;
  out.channels = channels;
  out.pixels = std::move(job.pixels);
  return out;
}

// ---- PNG -----------------------------------------------------------------------------------
// libpng's full API rather than its simplified png_image API, which composites alpha onto a
// background and treats 16-bit samples as linear light; PIL does neither. libpng checks more
// than PIL (which has its own PNG reader): a bad CRC in a critical chunk or a file cut after its
// last image data (no IEND) is an error here, while PIL still loads the latter.

struct PngJob {
  const std::string* bytes = nullptr;
  size_t pos = 0;
  png_structp png = nullptr;
  png_infop info = nullptr;
  char message[256] = {};
  bool truncated = false;
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::vector<png_byte> palette_rgb;  // num_palette * 3
  std::vector<uint8_t> raw;           // rows after libpng's transforms, back to back
  std::vector<png_bytep> rows;
  PngJob() = default;
  PngJob(const PngJob&) = delete;
  PngJob& operator=(const PngJob&) = delete;
  ~PngJob() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

[[noreturn]] void png_bail(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof(job->message), "%s", message);
  png_longjmp(png, 1);
}

// libpng warns about damaged ancillary chunks (text, colour profiles) that PIL ignores too.
void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (n > job->bytes->size() - job->pos) {
    job->truncated = true;
    png_error(png, "PNG is truncated (the file ends early)");
  }
  std::memcpy(out, job->bytes->data() + job->pos, n);
  job->pos += n;
}

// Reads the chunks before the image data and sets libpng's transforms. False: see job.message.
bool png_start(PngJob& job) {
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_bail, png_ignore_warning);
  if (!job.png) {
    std::snprintf(job.message, sizeof(job.message), "libpng cannot start");
    return false;
  }
  if (setjmp(png_jmpbuf(job.png))) return false;
  job.info = png_create_info_struct(job.png);
  if (!job.info) png_error(job.png, "libpng cannot start");
  png_set_read_fn(job.png, &job, png_read_bytes);
  png_set_user_limits(job.png, kMaxImageSide, kMaxImageSide);
  png_read_info(job.png, job.info);
  job.width = png_get_image_width(job.png, job.info);
  job.height = png_get_image_height(job.png, job.info);
  job.bit_depth = png_get_bit_depth(job.png, job.info);
  job.color_type = png_get_color_type(job.png, job.info);
  if (job.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp palette = nullptr;
    int n = 0;
    if (png_get_PLTE(job.png, job.info, &palette, &n) == 0) png_error(job.png, "palette missing");
    job.palette_rgb.resize(static_cast<size_t>(n) * 3);
    for (int i = 0; i < n; ++i) {
      job.palette_rgb[i * 3 + 0] = palette[i].red;
      job.palette_rgb[i * 3 + 1] = palette[i].green;
      job.palette_rgb[i * 3 + 2] = palette[i].blue;
    }
    // Indices unpacked to one byte each and looked up below: libpng's palette expansion would
    // turn tRNS into alpha and has no answer for indices past the palette, which PIL shows.
    png_set_packing(job.png);
  } else if (job.color_type == PNG_COLOR_TYPE_GRAY && job.bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(job.png);  // scales 0..2^n-1 to 0..255, as PIL's L;2 and L;4
  }
  png_set_interlace_handling(job.png);
  png_read_update_info(job.png, job.info);
  return true;
}

// Decodes the image data into job.rows, already set up, and checks the file to its IEND.
bool png_finish(PngJob& job) {
  if (setjmp(png_jmpbuf(job.png))) return false;
  png_read_image(job.png, job.rows.data());
  png_read_end(job.png, nullptr);
  return true;
}

// The dimensions from the IHDR chunk, which a valid PNG has first, so an absurd size is
// refused before libpng reads whatever chunks follow.
bool png_header_size(const std::string& bytes, int64_t* width, int64_t* height) {
  if (bytes.size() < 24 || bytes.compare(12, 4, "IHDR") != 0) return false;
  auto be32 = [&](size_t at) {
    return (int64_t{static_cast<uint8_t>(bytes[at])} << 24) |
           (int64_t{static_cast<uint8_t>(bytes[at + 1])} << 16) |
           (int64_t{static_cast<uint8_t>(bytes[at + 2])} << 8) |
           int64_t{static_cast<uint8_t>(bytes[at + 3])};
  };
  *width = be32(16);
  *height = be32(20);
  return true;
}

Image decode_png(const std::string& bytes, const std::string& what) {
  int64_t header_w = 0, header_h = 0;
  if (png_header_size(bytes, &header_w, &header_h)) check_size(what, header_w, header_h);
  PngJob job;
  job.bytes = &bytes;
  auto png_failure = [&]() {
    fail(what, job.truncated ? std::string(job.message)
                             : detail::concat("cannot decode PNG: ", job.message));
  };
  if (!png_start(job)) png_failure();
  const int64_t height = job.height, width = job.width;
  check_size(what, width, height);
  const size_t row_bytes = png_get_rowbytes(job.png, job.info);
  job.raw.resize(row_bytes * static_cast<size_t>(height));
  job.rows.resize(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) job.rows[y] = job.raw.data() + row_bytes * y;
  if (!png_finish(job)) png_failure();

  // PIL's unpacking of each PNG mode, then convert('RGB') or 'L' with alpha dropped.
  const bool wide = job.bit_depth == 16;
  const int samples = png_get_channels(job.png, job.info);
  const bool grey =
      job.color_type == PNG_COLOR_TYPE_GRAY || job.color_type == PNG_COLOR_TYPE_GRAY_ALPHA;
  Image out = make_image(height, width, grey ? 1 : 3);
  const int out_c = static_cast<int>(out.channels);
  const size_t pixel_bytes = static_cast<size_t>(samples) * (wide ? 2 : 1);
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* in = job.rows[y];
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y * width * out_c);
    if (job.color_type == PNG_COLOR_TYPE_PALETTE) {
      const size_t n = job.palette_rgb.size() / 3;
      for (int64_t x = 0; x < width; ++x) {
        const size_t i = in[x];
        for (int c = 0; c < 3; ++c) {
          // PIL's palette holds the grey ramp (i, i, i) past the file's entries.
          dst[x * 3 + c] = i < n ? job.palette_rgb[i * 3 + c] : static_cast<uint8_t>(i);
        }
      }
    } else if (job.color_type == PNG_COLOR_TYPE_GRAY && wide) {
      // PIL opens 16-bit grey as mode I, whose conversion to L or RGB clamps rather than scales.
      for (int64_t x = 0; x < width; ++x) {
        const int v = (in[x * 2] << 8) | in[x * 2 + 1];
        dst[x] = static_cast<uint8_t>(std::min(v, 255));
      }
    } else {
      // 16-bit colour and grey+alpha: PIL keeps each sample's high (first) byte.
      for (int64_t x = 0; x < width; ++x) {
        const uint8_t* p = in + x * pixel_bytes;
        for (int c = 0; c < out_c; ++c) dst[x * out_c + c] = p[wide ? c * 2 : c];
      }
    }
  }
  return out;
}

std::string hex_prefix(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) {
    std::snprintf(buf, sizeof(buf), i ? " %02x" : "%02x", static_cast<uint8_t>(bytes[i]));
    out += buf;
  }
  return out;
}

bool starts_with(const std::string& bytes, const char* prefix, size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), prefix, n) == 0;
}

// A file shorter than the signature it starts with is a truncated file of that kind.
bool is_prefix_of(const std::string& bytes, const char* signature, size_t n) {
  return !bytes.empty() && bytes.size() < n &&
         std::memcmp(bytes.data(), signature, bytes.size()) == 0;
}

constexpr char kJpegSignature[] = "\xff\xd8\xff";
constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";

// ---- resizing ------------------------------------------------------------------------------

// PIL's Resample.c: 8-bit results with 2 bits of headroom for the negative lobes of bicubic.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_weight(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_weight(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position, the first input index, the number of taps and ksize fixed-point
// weights: PIL's precompute_coeffs and normalize_coeffs_8bpc, including its float box edges
// and its double arithmetic in the same order, so each weight rounds to the same integer.
struct Coeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

Coeffs precompute_coeffs(int64_t in_size, int64_t out_size, Filter filter) {
  const double support_1 = filter == Filter::kBicubic ? 2.0 : 1.0;
  double (*weight)(double) = filter == Filter::kBicubic ? bicubic_weight : bilinear_weight;
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_1 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = static_cast<int>(in_size);
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    int32_t* dst = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      dst[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift, as PIL's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One row of the horizontal pass: `src` (the input row) to `dst` (out_w pixels of C channels).
template <int C>
void resample_row(const uint8_t* src, const Coeffs& k, int64_t out_w, uint8_t* dst) {
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int32_t* w = &k.weights[static_cast<size_t>(xx) * k.ksize];
    const uint8_t* s = src + static_cast<int64_t>(k.first[xx]) * C;
    const int n = k.count[xx];
    int32_t acc[C];
    for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
    for (int x = 0; x < n; ++x) {
      for (int c = 0; c < C; ++c) acc[c] += s[x * C + c] * w[x];
    }
    for (int c = 0; c < C; ++c) dst[xx * C + c] = clip8(acc[c]);
  }
}

// One row of the vertical pass: the weighted sum of `count` rows, accumulated row by row, which
// gives PIL's per-pixel integer sums (integer addition is exact) in vectorisable loops.
void resample_column_row(const uint8_t* const* rows, const int32_t* w, int count, int64_t row_len,
                         int32_t* __restrict acc, uint8_t* __restrict dst) {
  std::fill(acc, acc + row_len, 1 << (kPrecisionBits - 1));
  for (int y = 0; y < count; ++y) {
    // restrict: uint8_t may alias anything, which would keep the compiler from vectorising
    const uint8_t* __restrict src = rows[y];
    const int32_t wy = w[y];
    for (int64_t i = 0; i < row_len; ++i) acc[i] += src[i] * wy;
  }
  for (int64_t i = 0; i < row_len; ++i) dst[i] = clip8(acc[i]);
}

// PIL's NEAREST resize: an affine scale with the source coordinate accumulated in double,
// (the same additions, so the same truncations), out-of-range samples left 0.
Image resize_nearest(const Image& in, int64_t out_h, int64_t out_w) {
  Image out = make_image(out_h, out_w, in.channels);
  const int64_t c = in.channels;
  const double ax = static_cast<double>(static_cast<float>(in.width)) / static_cast<double>(out_w);
  const double ay = static_cast<double>(static_cast<float>(in.height)) / static_cast<double>(out_h);
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  std::vector<int64_t> xin(static_cast<size_t>(out_w), -1);
  double xo = ax * 0.5;
  for (int64_t x = 0; x < out_w; ++x) {
    const int xi = coord(xo);
    if (xi >= 0 && xi < in.width) xin[x] = xi;
    xo += ax;
  }
  double yo = ay * 0.5;
  for (int64_t y = 0; y < out_h; ++y) {
    const int yi = coord(yo);
    yo += ay;
    if (yi < 0 || yi >= in.height) continue;
    const uint8_t* src = in.pixels.data() + yi * in.width * c;
    uint8_t* dst = out.pixels.data() + y * out_w * c;
    for (int64_t x = 0; x < out_w; ++x) {
      if (xin[x] < 0) continue;
      std::memcpy(dst + x * c, src + xin[x] * c, static_cast<size_t>(c));
    }
  }
  return out;
}

// Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour.
int64_t half_round_even(int64_t d) {
  const int64_t lo = d / 2;
  if (d % 2 == 0) return lo;
  return lo % 2 == 0 ? lo : lo + 1;
}

// Where the crop starts in image coordinates: negative when torchvision pads first.
int64_t crop_start(int64_t size, int64_t crop) {
  if (crop > size) return -((crop - size) / 2);
  return half_round_even(size - crop);
}

}  // namespace

Image decode(const std::string& bytes, const std::string& what, const DecodeOptions& options) {
  if (bytes.empty()) fail(what, "file is empty (0 bytes)");
  if (starts_with(bytes, kJpegSignature, 3)) return decode_jpeg(bytes, what, options);
  if (starts_with(bytes, kPngSignature, 8)) return decode_png(bytes, what);
  if (is_prefix_of(bytes, kJpegSignature, 3)) fail(what, "JPEG is truncated (the file ends early)");
  if (is_prefix_of(bytes, kPngSignature, 8)) fail(what, "PNG is truncated (the file ends early)");
  const char* other = nullptr;
  if (starts_with(bytes, "GIF8", 4))
    other = "GIF";
  else if (starts_with(bytes, "BM", 2))
    other = "BMP";
  else if (starts_with(bytes, "II*\0", 4) || starts_with(bytes, "MM\0*", 4))
    other = "TIFF";
  else if (starts_with(bytes, "RIFF", 4) && bytes.size() >= 12 && bytes.compare(8, 4, "WEBP") == 0)
    other = "WebP";
  else if (bytes.size() >= 12 && bytes.compare(4, 4, "ftyp") == 0)
    other = "HEIF/AVIF";
  if (other)
    fail(what, detail::concat("is a ", other, " image; edgeforge reads only JPEG and PNG"));
  fail(what,
       detail::concat("is not a JPEG or PNG file (it starts with bytes ", hex_prefix(bytes), ")"));
}

Image read_image(const std::string& path, const DecodeOptions& options) {
  // stdio rather than a stream: errno says why opening or reading failed (a directory, say,
  // opens and then fails to read, where libstdc++'s stream iterator throws its own exception).
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) fail(path, detail::concat("cannot open file (", std::strerror(errno), ")"));
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, n);
  if (std::ferror(file.get()))
    fail(path, detail::concat("cannot read file (", std::strerror(errno), ")"));
  return decode(bytes, path, options);
}

Image to_rgb(const Image& image) {
  check_image(image, "to_rgb");
  if (image.channels == 3) return image;
  Image out = make_image(image.height, image.width, 3);
  const size_t n = image.pixels.size();
  for (size_t i = 0; i < n; ++i) {
    out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = image.pixels[i];
  }
  return out;
}

Image to_rgb(Image&& image) {
  check_image(image, "to_rgb");
  if (image.channels == 3) return std::move(image);
  return to_rgb(static_cast<const Image&>(image));
}

Image to_grey(const Image& image) {
  check_image(image, "to_grey");
  if (image.channels == 1) return image;
  Image out = make_image(image.height, image.width, 1);
  const size_t n = out.pixels.size();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &image.pixels[i * 3];
    out.pixels[i] =
        static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
  }
  return out;
}

Image to_grey(Image&& image) {
  check_image(image, "to_grey");
  if (image.channels == 1) return std::move(image);
  return to_grey(static_cast<const Image&>(image));
}

Image resize(const Image& image, int64_t out_h, int64_t out_w, Filter filter) {
  check_image(image, "resize");
  EF_CHECK(out_h > 0 && out_w > 0 && out_h <= kMaxImageSide && out_w <= kMaxImageSide &&
               out_h * out_w <= kMaxImagePixels,
           "image::resize: output size ", out_h, "x", out_w, " must be positive and at most ",
           kMaxImageSide, " a side and ", kMaxImagePixels, " pixels");
  if (out_h == image.height && out_w == image.width) return image;
  if (filter == Filter::kNearest) return resize_nearest(image, out_h, out_w);

  // PIL's two passes, horizontal first, each rounding to 8 bits; a pass is skipped when its
  // side keeps its size, as PIL does.
  const int64_t c = image.channels;
  const int64_t in_row = image.width * c, out_row = out_w * c;
  const uint8_t* src = image.pixels.data();
  Image out = make_image(out_h, out_w, c);
  const auto resample = c == 1 ? resample_row<1> : resample_row<3>;  // check_image: 1 or 3
  if (out_h == image.height) {
    const Coeffs hor = precompute_coeffs(image.width, out_w, filter);
    for (int64_t y = 0; y < out_h; ++y) {
      resample(src + y * in_row, hor, out_w, out.pixels.data() + y * out_row);
    }
    return out;
  }
  const bool need_horizontal = out_w != image.width;
  const Coeffs vert = precompute_coeffs(image.height, out_h, filter);
  const Coeffs hor = need_horizontal ? precompute_coeffs(image.width, out_w, filter) : Coeffs{};
  // Horizontally resampled rows are kept in a ring of ksize rows rather than a whole
  // intermediate image: the vertical windows only move down and span at most ksize rows, so
  // each row is computed once, as in PIL, and stays in cache while it is used.
  const int ring_rows = vert.ksize;
  std::vector<uint8_t> ring(need_horizontal ? static_cast<size_t>(ring_rows * out_row) : 0);
  std::vector<int64_t> ring_holds(static_cast<size_t>(ring_rows), -1);
  std::vector<const uint8_t*> taps(static_cast<size_t>(vert.ksize));
  std::vector<int32_t> acc(static_cast<size_t>(out_row));
  for (int64_t yy = 0; yy < out_h; ++yy) {
    const int count = vert.count[yy];
    for (int t = 0; t < count; ++t) {
      const int64_t r = vert.first[yy] + t;
      if (!need_horizontal) {
        taps[t] = src + r * in_row;
        continue;
      }
      const int64_t slot = r % ring_rows;
      uint8_t* row = ring.data() + slot * out_row;
      if (ring_holds[slot] != r) {
        resample(src + r * in_row, hor, out_w, row);
        ring_holds[slot] = r;
      }
      taps[t] = row;
    }
    resample_column_row(taps.data(), &vert.weights[static_cast<size_t>(yy) * vert.ksize], count,
                        out_row, acc.data(), out.pixels.data() + yy * out_row);
  }
  return out;
}

Image resize_shorter_side(const Image& image, int64_t size, Filter filter) {
  check_image(image, "resize_shorter_side");
  EF_CHECK(size > 0, "image::resize_shorter_side: size must be positive, got ", size);
  const int64_t h = image.height, w = image.width;
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // Python's int(size * long / short): a correctly rounded double quotient, truncated.
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return w <= h ? resize(image, new_long, size, filter) : resize(image, size, new_long, filter);
}

Image center_crop(const Image& image, int64_t crop_h, int64_t crop_w) {
  check_image(image, "center_crop");
  EF_CHECK(crop_h > 0 && crop_w > 0 && crop_h <= kMaxImageSide && crop_w <= kMaxImageSide,
           "image::center_crop: crop ", crop_h, "x", crop_w, " must be positive and at most ",
           kMaxImageSide, " a side");
  const int64_t top = crop_start(image.height, crop_h);
  const int64_t left = crop_start(image.width, crop_w);
  const int64_t c = image.channels;
  Image out = make_image(crop_h, crop_w, c);  // zero-filled: torchvision's padding
  const int64_t x0 = std::max<int64_t>(0, -left);
  const int64_t x1 = std::min(crop_w, image.width - left);
  for (int64_t y = 0; y < crop_h; ++y) {
    const int64_t sy = y + top;
    if (sy < 0 || sy >= image.height || x1 <= x0) continue;
    std::memcpy(out.pixels.data() + (y * crop_w + x0) * c,
                image.pixels.data() + (sy * image.width + x0 + left) * c,
                static_cast<size_t>((x1 - x0) * c));
  }
  return out;
}

void normalize_into(const Image& image, const NormalizeOptions& options, float* out) {
  check_image(image, "normalize_into");
  EF_CHECK(std::isfinite(options.scale) && options.scale != 0.0f,
           "image::normalize_into: scale must be finite and non-zero, got ", options.scale);
  const int64_t c = image.channels;
  // ToTensor computes x / 255; multiplying by the float nearest 1/255 differs in the last bit
  // for 126 of the 256 values, so the reciprocal of an integer is applied as that division.
  const float divisor = std::round(1.0f / options.scale);
  const bool divide = divisor >= 1.0f && 1.0f / divisor == options.scale;
  float lut[3][256];
  for (int64_t ch = 0; ch < c; ++ch) {
    const float mean = options.mean[ch], std = options.std[ch];
    EF_CHECK(std::isfinite(std) && std != 0.0f && std::isfinite(mean),
             "image::normalize_into: channel ", ch, " needs a finite mean and a non-zero std, got ",
             mean, " and ", std);
    for (int v = 0; v < 256; ++v) {
      const float x =
          divide ? static_cast<float>(v) / divisor : static_cast<float>(v) * options.scale;
      lut[ch][v] = (x - mean) / std;
    }
  }
  const int64_t hw = image.height * image.width;
  const uint8_t* px = image.pixels.data();
  for (int64_t oc = 0; oc < c; ++oc) {
    const int64_t sc = options.bgr && c == 3 ? 2 - oc : oc;
    const float* table = lut[sc];
    if (options.nhwc) {
      for (int64_t i = 0; i < hw; ++i) out[i * c + oc] = table[px[i * c + sc]];
    } else {
      float* dst = out + oc * hw;
      for (int64_t i = 0; i < hw; ++i) dst[i] = table[px[i * c + sc]];
    }
  }
}

}  // namespace edgeforge::image
