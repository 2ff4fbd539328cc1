// image_io: JPEG/PNG decoding and the preprocessing of torchvision's classic ImageNet evaluation
// pipeline, so that a model deployed with edgeforge sees the same input tensor, bit for bit, as
// it did when it was evaluated in Python with
//   transforms.Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)])
// on Image.open(f).convert('RGB') (torchvision's default_loader), as Debian 12's PIL 9.4 and
// torchvision 0.14 compute it. Standard library only in this header; the implementation links
// libjpeg-turbo's libjpeg API and libpng (-ljpeg -lpng).
//
//   namespace img = edgeforge::image;
//   img::Image rgb = img::to_rgb(img::read_image("cat.jpg"));
//   rgb = img::center_crop(img::resize_shorter_side(rgb, 256, img::Filter::kBilinear), 224, 224);
//   std::vector<float> input(3 * 224 * 224);
//   img::normalize_into(rgb, img::NormalizeOptions{}, input.data());  // CHW, ImageNet mean/std
//
// Every decoding problem (truncated, corrupt, empty, unsupported or absurdly large file) throws
// edgeforge::Error with one line naming the file; nothing here exits or prints.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace edgeforge::image {

// Larger images are refused before any pixel memory is allocated.
constexpr int64_t kMaxImageSide = 32768;
constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

// HWC interleaved 8-bit pixels, channels 1 (grey) or 3 (RGB).
struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// PIL's resampling filters: kBilinear and kBicubic widen their support when downscaling
// (antialiasing) exactly as PIL's Image.resize does; kNearest is PIL's NEAREST.
enum class Filter { kBilinear, kBicubic, kNearest };

struct DecodeOptions {
  // Opt-in fast mode, off (0) by default because it changes pixels: a JPEG whose shorter side is
  // at least 2, 4 or 8 times this is decoded at 1/2, 1/4 or 1/8 scale by libjpeg's scaled IDCT
  // (the largest factor that keeps the shorter side >= this). Pass the Resize target (256).
  int64_t jpeg_min_shorter_side = 0;
};

// Decodes a JPEG or PNG (recognised by its signature, not by `what`) to grey or RGB, with the
// pixel values PIL's Image.open gives: grey (L, LA, 1-, 2-, 4-bit and 16-bit grey) stays one
// channel, everything else becomes RGB; alpha is dropped without compositing (as
// convert('RGB')); palette images are expanded; 16-bit samples keep their high byte, except
// 16-bit grey without alpha, which PIL opens as mode I and clamps to 0..255; CMYK and YCCK
// JPEGs are converted as PIL's convert('RGB') does (Adobe inverted CMYK, no colour management);
// the EXIF orientation is ignored, as by PIL's open. `what` (a file name) starts every error.
Image decode(const std::string& bytes, const std::string& what, const DecodeOptions& options = {});

// Reads the file at `path` and decodes it; errors name `path`.
Image read_image(const std::string& path, const DecodeOptions& options = {});

// Grey -> RGB by replication, as PIL's convert('RGB'); an RGB image is returned unchanged.
Image to_rgb(const Image& image);
Image to_rgb(Image&& image);  // moves an RGB image instead of copying it
// RGB -> grey as PIL's convert('L'): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (ITU-R 601-2
// luma in 16-bit fixed point); a grey image is returned unchanged.
Image to_grey(const Image& image);
Image to_grey(Image&& image);  // moves a grey image instead of copying it

// PIL's Image.resize((out_w, out_h), filter) on an 8-bit image, bit for bit: separable
// fixed-point passes (horizontal first) with PIL's coefficient rounding. Same size: a copy.
Image resize(const Image& image, int64_t out_h, int64_t out_w, Filter filter);
// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer
// int(size * long / short).
Image resize_shorter_side(const Image& image, int64_t size, Filter filter);
// torchvision's CenterCrop((crop_h, crop_w)): offset int(round((h - crop_h) / 2.0)) with
// Python's round-half-to-even; a crop larger than the image pads with 0, as torchvision does.
Image center_crop(const Image& image, int64_t crop_h, int64_t crop_w);

struct NormalizeOptions {
  // mean and std are in the image's channel order (R, G, B) whatever `bgr` says; a grey image
  // uses mean[0] and std[0].
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  float scale = 1.0f / 255;
  bool bgr = false;   // write the channels in B, G, R order
  bool nhwc = false;  // HWC layout instead of CHW
};

// Writes height * width * channels floats to `out`: (pixel * scale - mean[c]) / std[c] in
// float32, as ToTensor then Normalize compute it (a scale of 1/n is applied as a division by n,
// as ToTensor's division by 255, so the result matches it bit for bit).
void normalize_into(const Image& image, const NormalizeOptions& options, float* out);

}  // namespace edgeforge::image
